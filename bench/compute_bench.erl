%% compute_bench: the BEAM side of bench/sorted_set.sh and bench/dirty.sh.
%% serve/0 (on the BEAM target node) registers what an Elixir developer would write instead of the C node's
%% processes: ets_sset, a gen_server over an :ets ordered_set (keys {Score, Member}) plus a set table
%% Member -> Score; gb_sset, a gen_server over :gb_trees (keys {Score, Member}) plus a map Member -> Score; both
%% answer the sorted set's requests as the C sorted_set does. Also echo ({From, T} -> From ! T; calls answered with
%% the request) and burn ({burn, Ms}: computes Ms ms in a process of its own and replies {burned, Ms}).
%% sset/3 and dirty/2 (on the driver node) call both sides the same way and print one line per figure:
%% `bench=<name> impl=<cnode|ets|gb|beam> value=<v> unit=<u>`.
-module(compute_bench).
-behaviour(gen_server).
-export([serve/0, sset/3, dirty/2, beam_mem/0, os_rss/1]).
-export([init/1, handle_call/3, handle_cast/2]).

%% ---- BEAM target ------------------------------------------------------------------------------------------

serve() ->
    {ok, _} = gen_server:start({local, ets_sset}, ?MODULE, ets, []),
    {ok, _} = gen_server:start({local, gb_sset}, ?MODULE, gb, []),
    register(echo, spawn(fun echo/0)),
    register(burn, spawn(fun burner/0)),
    io:format("TARGET_READY~n").

echo() ->
    receive
        {'$gen_call', From, Req} -> gen_server:reply(From, Req);
        {From, T} when is_pid(From) -> From ! T;
        _ -> ok
    end,
    echo().

burner() ->
    receive
        {'$gen_call', From, {burn, Ms}} ->
            spawn(fun() -> spin(erlang:monotonic_time(millisecond) + Ms, 1), gen_server:reply(From, {burned, Ms}) end);
        _ -> ok
    end,
    burner().

spin(End, X) ->
    case erlang:monotonic_time(millisecond) >= End of
        true -> X;
        false -> spin(End, xs(xs(xs(X))))
    end.

xs(X) -> X1 = X bxor ((X bsl 13) band 16#FFFFFFFFFFFFFFFF), X2 = X1 bxor (X1 bsr 7),
         X2 bxor ((X2 bsl 17) band 16#FFFFFFFFFFFFFFFF).

init(ets) -> {ok, {ets, ets:new(sset, [ordered_set]), ets:new(members, [set])}};
init(gb) -> {ok, {gb, gb_trees:empty(), #{}}}.

handle_cast(_, S) -> {noreply, S}.

handle_call({add, Score, M}, _, S) -> {reply, ok, add(S, Score, M)};
handle_call({add_many, L}, _, S) -> {reply, ok, lists:foldl(fun({Sc, M}, A) -> add(A, Sc, M) end, S, L)};
handle_call({remove, M}, _, S) -> {reply, ok, remove(S, M)};
handle_call({score, M}, _, S) -> {reply, score(S, M), S};
handle_call({rank, M}, _, S) ->
    case score(S, M) of
        error -> {reply, error, S};
        {ok, Sc} -> {reply, {ok, rank(S, {Sc, M})}, S}
    end;
handle_call({range, Start, Stop}, _, S) -> {reply, range(S, Start, Stop), S};
handle_call(size, _, {ets, _, Mt} = S) -> {reply, ets:info(Mt, size), S};
handle_call(size, _, {gb, T, _} = S) -> {reply, gb_trees:size(T), S};
handle_call(clear, _, {ets, T, Mt} = S) -> ets:delete_all_objects(T), ets:delete_all_objects(Mt), {reply, ok, S};
handle_call(clear, _, {gb, _, _}) -> erlang:garbage_collect(), {reply, ok, {gb, gb_trees:empty(), #{}}}.

add({ets, T, Mt} = S, Score, M) ->
    case ets:lookup(Mt, M) of [{_, Old}] -> ets:delete(T, {Old, M}); [] -> ok end,
    ets:insert(T, {{Score, M}}),
    ets:insert(Mt, {M, Score}),
    S;
add({gb, T, Mm}, Score, M) ->
    T1 = case Mm of #{M := Old} -> gb_trees:delete({Old, M}, T); _ -> T end,
    {gb, gb_trees:insert({Score, M}, [], T1), Mm#{M => Score}}.

remove({ets, T, Mt} = S, M) ->
    case ets:lookup(Mt, M) of [{_, Old}] -> ets:delete(T, {Old, M}), ets:delete(Mt, M); [] -> ok end,
    S;
remove({gb, T, Mm} = S, M) ->
    case Mm of #{M := Old} -> {gb, gb_trees:delete({Old, M}, T), maps:remove(M, Mm)}; _ -> S end.

score({ets, _, Mt}, M) -> case ets:lookup(Mt, M) of [{_, Sc}] -> {ok, Sc}; [] -> error end;
score({gb, _, Mm}, M) -> case Mm of #{M := Sc} -> {ok, Sc}; _ -> error end.

%% Neither structure keeps subtree counts: a rank is a count of the keys before it (what a developer writes).
rank({ets, T, _}, K) -> ets:select_count(T, [{{'$1'}, [{'<', '$1', {const, K}}], [true]}]);
rank({gb, T, _}, K) -> count_before(gb_trees:next(gb_trees:iterator(T)), K, 0).

count_before(none, _, N) -> N;
count_before({K1, _, I}, K, N) when K1 < K -> count_before(gb_trees:next(I), K, N + 1);
count_before(_, _, N) -> N.

%% By rank: walk from the smallest key.
range({ets, T, _}, Start, Stop) -> ets_walk(T, ets:first(T), 0, Start, Stop, []);
range({gb, T, _}, Start, Stop) -> gb_walk(gb_trees:next(gb_trees:iterator(T)), 0, Start, Stop, []).

ets_walk(_, '$end_of_table', _, _, _, Acc) -> lists:reverse(Acc);
ets_walk(_, _, I, _, Stop, Acc) when I > Stop -> lists:reverse(Acc);
ets_walk(T, K, I, Start, Stop, Acc) when I < Start -> ets_walk(T, ets:next(T, K), I + 1, Start, Stop, Acc);
ets_walk(T, K, I, Start, Stop, Acc) -> ets_walk(T, ets:next(T, K), I + 1, Start, Stop, [K | Acc]).

gb_walk(none, _, _, _, Acc) -> lists:reverse(Acc);
gb_walk(_, I, _, Stop, Acc) when I > Stop -> lists:reverse(Acc);
gb_walk({_, _, It}, I, Start, Stop, Acc) when I < Start -> gb_walk(gb_trees:next(It), I + 1, Start, Stop, Acc);
gb_walk({K, _, It}, I, Start, Stop, Acc) -> gb_walk(gb_trees:next(It), I + 1, Start, Stop, [K | Acc]).

%% The target node's memory after a garbage collection of every process (its ETS tables and heaps included).
beam_mem() ->
    [erlang:garbage_collect(P) || P <- processes()],
    erlang:memory(total).

%% The resident memory of an OS process on this host (the C node), in bytes.
os_rss(OsPid) ->
    {ok, B} = file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/status"),
    {match, [Kb]} = re:run(B, "VmRSS:\\s+(\\d+) kB", [{capture, all_but_first, list}]),
    list_to_integer(Kb) * 1024.

%% ---- Driver: the sorted set ---------------------------------------------------------------------------------

out(Bench, Impl, V, Unit) -> io:format("bench=~s impl=~s value=~s unit=~s~n", [Bench, Impl, fmt(V), Unit]).
fmt(V) when is_float(V) -> float_to_list(V, [{decimals, 2}]);
fmt(V) -> integer_to_list(V).

member(I) -> <<"member-", (integer_to_binary(I))/binary>>.

%% Calls Fun(I) for I = 1.. until Max calls or Secs seconds; calls per second.
rate(Fun, Max, Secs) ->
    T0 = erlang:monotonic_time(microsecond),
    End = T0 + round(Secs * 1000000),
    N = rate_loop(Fun, 1, Max, End),
    N * 1000000 / max(1, erlang:monotonic_time(microsecond) - T0).

rate_loop(Fun, I, Max, End) ->
    Fun(I),
    case I >= Max orelse erlang:monotonic_time(microsecond) >= End of
        true -> I;
        false -> rate_loop(Fun, I + 1, Max, End)
    end.

%% Sizes: [N]; Targets: [{Impl, Server, MemFun}]; Secs: time bound of each timed figure.
sset(Sizes, Targets, Secs) ->
    rand:seed(exsss, {1, 2, 3}),
    [sset_size(N, T, Secs) || N <- Sizes, T <- Targets],
    ok.

sset_size(N, {Impl, Server, Mem}, Secs) ->
    C = fun(Req) -> gen_server:call(Server, Req, 600000) end,
    C(clear_or_size(Impl)),
    0 = C(size),
    Mem0 = Mem(),
    T0 = erlang:monotonic_time(microsecond),
    fill(C, 0, N),
    FillS = (erlang:monotonic_time(microsecond) - T0) / 1000000,
    N = C(size),
    Mem1 = Mem(),
    Sz = integer_to_list(N div 1000) ++ "k",
    out("fill_" ++ Sz, Impl, N / FillS, "members/s (add_many of 1000)"),
    out("mem_" ++ Sz, Impl, (Mem1 - Mem0) / N, "bytes/member"),
    out("add_" ++ Sz, Impl, rate(fun(I) -> ok = C({add, rand:uniform(1000000000), member(N + I)}) end, 20000, Secs),
        "calls/s"),
    Size = C(size),
    out("rank_" ++ Sz, Impl, rate(fun(_) -> {ok, _} = C({rank, member(rand:uniform(N))}) end, 20000, Secs), "calls/s"),
    out("range100_" ++ Sz, Impl,
        rate(fun(_) -> S = rand:uniform(Size - 100) - 1, [_ | _] = C({range, S, S + 99}) end, 20000, Secs), "calls/s"),
    C(clear_or_size(Impl)),
    ok.

%% The C sorted set has no clear: its members are removed by the driver (sset.sh restarts cnode per size instead).
clear_or_size(cnode) -> size;
clear_or_size(_) -> clear.

fill(_, From, N) when From >= N -> ok;
fill(C, From, N) ->
    To = min(N, From + 1000),
    ok = C({add_many, [{rand:uniform(1000000000), member(I)} || I <- lists:seq(From + 1, To)]}),
    fill(C, To, N).

%% ---- Driver: the dirty pool ---------------------------------------------------------------------------------

%% Impl: cnode | beam; Node: the target. Echo round trips with 0, 1 and 2 burns running, 2 burns against 1, and
%% the cost of a call to a dirty process against a plain one (cnode only).
dirty(Impl, Node) ->
    Echo = {echo, Node},
    Burn = case Impl of cnode -> {cnode_burn, Node}; beam -> {burn, Node} end,
    BurnReq = fun(Ms) -> case Impl of cnode -> {burn_job, Ms}; beam -> {burn, Ms} end end,
    [echo_rtt(Echo, Node) || _ <- lists:seq(1, 200)],
    [begin
         Lat = echo_during(Impl, Echo, Node, Burn, BurnReq, K),
         Sorted = lists:sort(Lat),
         out("echo_p50_" ++ integer_to_list(K) ++ "burn", Impl, pct(0.5, Sorted), "us"),
         out("echo_p99_" ++ integer_to_list(K) ++ "burn", Impl, pct(0.99, Sorted), "us")
     end || K <- [0, 1, 2]],
    One = burns(Burn, BurnReq(1000), 1),
    Two = burns(Burn, BurnReq(1000), 2),
    out("burn1x1000ms", Impl, One, "ms"),
    out("burn2x1000ms", Impl, Two, "ms"),
    out("burn_2_vs_1", Impl, Two / One, "x (1.0 = fully parallel)"),
    case Impl of
        cnode ->
            Plain = rate(fun(I) -> I = gen_server:call(Echo, I) end, 30000, 3.0),
            Dirty = rate(fun(I) -> I = gen_server:call({cnode_burn, Node}, {echo, I}) end, 30000, 3.0),
            out("call_plain", Impl, 1000000 / Plain, "us/call"),
            out("call_dirty", Impl, 1000000 / Dirty, "us/call"),
            out("dirty_cost", Impl, 1000000 / Dirty - 1000000 / Plain, "us/message");
        beam -> ok
    end,
    ok.

echo_rtt({_, Node} = Echo, _) ->
    T0 = erlang:monotonic_time(microsecond),
    Echo ! {self(), ping},
    receive ping -> erlang:monotonic_time(microsecond) - T0 after 10000 -> exit({no_echo, Node}) end.

%% K burns of 3 s running (K = 0: 3 s of round trips alone); one round trip per millisecond meanwhile.
echo_during(_Impl, Echo, Node, Burn, BurnReq, K) ->
    Self = self(),
    Ps = [spawn_link(fun() -> Self ! {burned, self(), gen_server:call(Burn, BurnReq(3000), 60000)} end)
          || _ <- lists:seq(1, K)],
    timer:sleep(50),
    End = erlang:monotonic_time(millisecond) + 2500,
    Lat = echo_loop(Echo, Node, End, []),
    [receive {burned, P, _} -> ok end || P <- Ps],
    Lat.

echo_loop(Echo, Node, End, Acc) ->
    case erlang:monotonic_time(millisecond) >= End of
        true -> Acc;
        false -> L = echo_rtt(Echo, Node), timer:sleep(1), echo_loop(Echo, Node, End, [L | Acc])
    end.

burns(Burn, Req, K) ->
    Self = self(),
    T0 = erlang:monotonic_time(millisecond),
    Ps = [spawn_link(fun() -> Self ! {b, self(), gen_server:call(Burn, Req, 60000)} end) || _ <- lists:seq(1, K)],
    [receive {b, P, _} -> ok end || P <- Ps],
    erlang:monotonic_time(millisecond) - T0.

pct(Q, Sorted) -> lists:nth(max(1, min(length(Sorted), round(Q * length(Sorted)))), Sorted).
