%% beam_bench: the Erlang side of bench/dist.sh.
%%
%% target/0 makes a BEAM node speak the protocol bench/cnode_bench.c and bench/ei_node.c speak (registered
%% sink, echo, ctl and the gen_server gs; see cnode_bench.c). main/1 is the driver: it runs every workload
%% against each target in turn, in rotating order and for several repetitions, and prints one machine line
%% per figure (the median of the repetitions):
%%   bench=<name> impl=<beam|ei|cnode> value=<v> unit=<u> runs=<v1,v2,...>
%% plus a table. Impl beam is a second BEAM node, so `beam` rows are the BEAM<->BEAM pair; rows named *_c2c
%% are cnode -> cnode and rows named *_e2e ei node -> ei node (driven from here the same way: the sending node's
%% ctl is asked to send to {sink, SecondNode}, timed from the command to the receiving sink's answer).
-module(beam_bench).
-behaviour(gen_server).
-export([target/0, main/1, proc_mem/2, prof/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

%% ---- target side ------------------------------------------------------------------------------------------

target() ->
    register(sink, spawn(fun() -> sink(0) end)),
    register(echo, spawn(fun echo/0)),
    register(ctl, spawn(fun ctl/0)),
    {ok, _} = gen_server:start({local, gs}, ?MODULE, [], []),
    ok.

init([]) -> {ok, nostate}.
handle_call(Req, _From, S) -> {reply, Req, S}.
handle_cast(_, S) -> {noreply, S}.
handle_info(_, S) -> {noreply, S}.

sink(N) ->
    receive
        {seq, _, _} -> sink(N + 1);
        {done, From, Ref} -> From ! {Ref, N}, sink(N);
        _ -> sink(N)
    end.

echo() ->
    receive
        {From, T} -> From ! T;
        _ -> ok
    end,
    echo().

ctl() ->
    receive
        {From, Ref, os_pid} ->
            From ! {Ref, list_to_integer(os:getpid())};
        {From, Ref, {send, Dest, Count, Size, Senders}} ->
            start_senders(From, Ref, Dest, Count, Size, Senders);
        _ ->
            ok
    end,
    ctl().

start_senders(From, Ref, Dest, Count, Size, Senders) ->
    Bin = binary:copy(<<"x">>, Size),
    [spawn(fun() ->
               send_loop(Dest, Bin, 0, Count div Senders + (case K < Count rem Senders of true -> 1; false -> 0 end)),
               Dest ! {done, From, Ref}
           end) || K <- lists:seq(0, Senders - 1)],
    ok.

send_loop(_Dest, _Bin, I, I) -> ok;
send_loop(Dest, Bin, I, N) -> Dest ! {seq, I, Bin}, send_loop(Dest, Bin, I + 1, N).

%% ---- driver ----------------------------------------------------------------------------------------------

%% main([Phase, Quick, Reps, BeamNode, EiNode, Ei2Node, C1Node, C2Node, OutFile])
main([Phase, Quick, Reps, Beam, Ei, E2, C1, C2, Out]) ->
    try
        run(Phase, Quick =:= "1", list_to_integer(Reps),
            #{beam => list_to_atom(Beam), ei => list_to_atom(Ei), e2 => list_to_atom(E2),
              cnode => list_to_atom(C1), c2 => list_to_atom(C2)}, Out),
        halt(0)
    catch C:E:St ->
        io:format("beam_bench: ~p:~p~n~p~n", [C, E, St]),
        halt(1)
    end.

-define(IMPLS, [beam, ei, cnode]).

%% For profiling one implementation by hand: repeats one workload against Node and prints each run.
%%   erl ... -run beam_bench prof b2x|x2b|ping|gencall Node Count Size Senders Reps
%%   erl ... -run beam_bench prof c2c|e2e Node1 Node2 Count Size Senders Reps  (Node1 sends to Node2's sink)
%%   erl ... -run beam_bench prof gencall_rot Ms Rounds Node...  (bench/gencall_bound.sh: gencall against each
%%            node in turn, the order rotating every round, after a warm-up; prints "gencall Node Rate" per run)
prof(["gencall_rot", Ms, Rounds | Names]) ->
    Ns = [list_to_atom(N) || N <- Names],
    [true = net_kernel:connect_node(N) || N <- Ns],
    put(nodes, maps:from_list([{N, N} || N <- Ns])),
    [calls(N, 120, 300) || N <- Ns],
    io:format("start~n"),
    Res = interleave(Ns, list_to_integer(Rounds),
                     fun(N) ->
                             #{rate := R} = calls(N, 120, list_to_integer(Ms)),
                             io:format("gencall ~s ~.1f~n", [N, R]),
                             R
                     end),
    timer:sleep(500), % the last run's sample is taken before this node halts
    [io:format("median ~s ~.1f~n", [N, lists:nth(length(L) div 2 + 1, lists:sort(L))]) || N <- Ns,
                                                                                       L <- [maps:get(N, Res)]],
    halt(0);
prof([Pair, N1, N2, Count, Size, Senders, Reps]) when Pair =:= "c2c"; Pair =:= "e2e" ->
    {K1, K2} = case Pair of "c2c" -> {cnode, c2}; "e2e" -> {ei, e2} end,
    Nodes = #{K1 => list_to_atom(N1), K2 => list_to_atom(N2)},
    register(dsink, spawn(fun() -> sink(0) end)),
    [true = net_kernel:connect_node(N) || N <- maps:values(Nodes)],
    put(nodes, Nodes),
    put(ospids, maps:map(fun(_, N) -> call_ctl(N, os_pid) end, Nodes)),
    [C, Sz, Se] = [list_to_integer(X) || X <- [Count, Size, Senders]],
    [io:format("~s: ~p~n", [Pair, oneway(K1, list_to_atom(Pair), C, Sz, Se)])
     || _ <- lists:seq(1, list_to_integer(Reps))],
    halt(0);
prof([Kind, Node, Count, Size, Senders, Reps]) ->
    N = list_to_atom(Node),
    register(dsink, spawn(fun() -> sink(0) end)),
    true = net_kernel:connect_node(N),
    put(nodes, #{x => N}),
    put(ospids, #{x => call_ctl(N, os_pid)}),
    [C, Sz, Se] = [list_to_integer(X) || X <- [Count, Size, Senders]],
    [io:format("~s: ~p~n", [Kind, case Kind of
                                      "ping" -> ping(x, C);
                                      "gencall" -> calls(x, 120, C);
                                      _ -> oneway(x, list_to_atom(Kind), C, Sz, Se)
                                  end]) || _ <- lists:seq(1, list_to_integer(Reps))],
    halt(0).

run(Phase, Quick, Reps, Nodes, Out) ->
    register(dsink, spawn(fun() -> sink(0) end)),
    [true = net_kernel:connect_node(N) || N <- maps:values(Nodes)],
    OsPids = maps:map(fun(_, N) -> call_ctl(N, os_pid) end, Nodes),
    put(ospids, OsPids),
    put(nodes, Nodes),
    {ok, Fd} = file:open(Out, [append]),
    put(out, Fd),
    Suffix = case Phase of "pinned" -> ""; _ -> "_" ++ Phase end,
    put(suffix, Suffix),
    %% Scale: quick mode is for development and CI; the full run is the one to quote.
    %% Counts: the full run uses the issue's (1M small messages, 100k round trips).
    S = case Quick of true -> 1; false -> 10 end,
    L = case Quick of true -> 1; false -> 4 end, % large payloads: ~100-200 MB a run quick, ~0.4-0.8 GB full
    SmallN = 100000 * S,
    %% warm-up: connections, code paths, allocators; results dropped
    [oneway(I, D, 5000, 64, 1) || I <- ?IMPLS, D <- [b2x, x2b]],
    oneway(c2c, c2c, 5000, 64, 1),
    oneway(e2e, e2e, 5000, 64, 1),
    [ping(I, 500) || I <- ?IMPLS ++ [c2c, e2e]],
    case Phase of
        "pinned" ->
            small(Reps, SmallN, 1, "small"),
            small(Reps, SmallN, 8, "small8"),
            [large(Reps, Size, Cnt) ||
                {Size, Cnt} <- [{4096, 25000 * L}, {65536, 3000 * L}, {1 bsl 20, 200 * L}, {8 bsl 20, 25 * L}]],
            pingpong(Reps, 10000 * S),
            gencall(Reps, case Quick of true -> 500; false -> 2000 end),
            peak_rss();
        _ ->
            small(Reps, SmallN, 1, "small"),
            pingpong(Reps, 10000 * S)
    end,
    file:close(Fd).

%% Runs F(Impl) Reps times per impl, rotating the order each repetition; returns #{Impl => [Result]}.
interleave(Impls, Reps, F) ->
    lists:foldl(
      fun(R, Acc) ->
              K = R rem length(Impls),
              Order = lists:nthtail(K, Impls) ++ lists:sublist(Impls, K),
              lists:foldl(fun(I, A) -> V = F(I), maps:update_with(I, fun(L) -> L ++ [V] end, [V], A) end,
                          Acc, Order)
      end, #{}, lists:seq(0, Reps - 1)).

%% Emits the median of key Key of each impl's results as bench=Name.
emit(Name, Unit, Results, Key) ->
    maps:foreach(
      fun(Impl, Rs) ->
              Vs = [maps:get(Key, R) || R <- Rs],
              line(Name, impl_name(Impl), median(Vs), Unit, Vs)
      end, Results).

impl_name(c2c) -> cnode;
impl_name(c2) -> cnode;
impl_name(e2e) -> ei;
impl_name(e2) -> ei;
impl_name(I) -> I.

line(Name, Impl, V, Unit, Vs) ->
    Runs = string:join([fmt(X) || X <- Vs], ","),
    L = io_lib:format("bench=~s~s impl=~s value=~s unit=~s runs=~s~n",
                      [Name, get(suffix), Impl, fmt(V), Unit, Runs]),
    io:put_chars(L),
    io:put_chars(get(out), L).

fmt(X) when is_integer(X) -> integer_to_list(X);
fmt(X) when abs(X) >= 100 -> integer_to_list(round(X));
fmt(X) -> float_to_list(X, [{decimals, 2}]).

median(Vs) ->
    S = lists:sort(Vs),
    N = length(S),
    case N rem 2 of
        1 -> lists:nth(N div 2 + 1, S);
        0 -> (lists:nth(N div 2, S) + lists:nth(N div 2 + 1, S)) / 2
    end.

small(Reps, N, Senders, Tag) ->
    Cases = [{I, b2x} || I <- ?IMPLS] ++ [{I, x2b} || I <- ?IMPLS] ++ [{c2c, c2c}, {e2e, e2e}],
    Res = interleave(Cases, Reps, fun({I, D}) -> oneway(I, D, N, 64, Senders) end),
    by_dir(Tag, Res, [{msgs, "msg/s"}, {mbs, "MB/s"}]),
    case Senders of
        1 ->
            %% CPU of the implementation's own OS process per million messages: as receiver (b2x), as sender
            %% (x2b); of both processes for c2c and e2e
            by_dir("cpu_per_Mmsg", Res, [{cpu, "cpu_s/Mmsg"}]);
        _ -> ok
    end.

by_dir(Tag, Res, Keys) ->
    [begin
         Sub = maps:from_list([{I, Rs} || {{I, D}, Rs} <- maps:to_list(Res), D =:= Dir]),
         [emit(Tag ++ "_" ++ atom_to_list(Dir) ++ key_sfx(K), U, Sub, key(K)) || {K, U} <- Keys]
     end || Dir <- [b2x, x2b, c2c, e2e]],
    ok.

key_sfx(msgs) -> "";
key_sfx(mbs) -> "_mbs";
key_sfx(cpu) -> "";
key_sfx(mbs_only) -> "".

key(mbs_only) -> mbs;
key(K) -> K.

large(Reps, Size, N) ->
    Cases = [{I, b2x} || I <- ?IMPLS] ++ [{I, x2b} || I <- ?IMPLS] ++ [{c2c, c2c}, {e2e, e2e}],
    Res = interleave(Cases, Reps, fun({I, D}) -> oneway(I, D, N, Size, 1) end),
    by_dir("bin" ++ size_name(Size), Res, [{mbs_only, "MB/s"}]).

size_name(S) when S >= 1 bsl 20 -> integer_to_list(S bsr 20) ++ "M";
size_name(S) -> integer_to_list(S bsr 10) ++ "K".

%% One one-way run: N messages {seq, I, <<Size bytes>>} from Senders senders; timed from the start to the
%% answers of the receiving sink to every sender's {done, ...}, which follows its last message.
oneway(Impl, Dir, N, Size, Senders) ->
    Nodes = get(nodes),
    {Dest, Count0} =
        case Dir of
            b2x -> D = {sink, maps:get(Impl, Nodes)}, {D, sink_count(D)};
            x2b -> {whereis(dsink), sink_count(dsink)};
            c2c -> D = {sink, maps:get(c2, Nodes)}, {D, sink_count(D)};
            e2e -> D = {sink, maps:get(e2, Nodes)}, {D, sink_count(D)}
        end,
    Watched = case Dir of c2c -> [cnode, c2]; e2e -> [ei, e2]; _ -> [Impl] end,
    Cpu0 = [cpu(W) || W <- Watched],
    Ref = make_ref(),
    T0 = erlang:monotonic_time(),
    case Dir of
        b2x -> start_senders(self(), Ref, Dest, N, Size, Senders);
        x2b -> {ctl, maps:get(Impl, Nodes)} ! {self(), Ref, {send, Dest, N, Size, Senders}};
        c2c -> {ctl, maps:get(cnode, Nodes)} ! {self(), Ref, {send, Dest, N, Size, Senders}};
        e2e -> {ctl, maps:get(ei, Nodes)} ! {self(), Ref, {send, Dest, N, Size, Senders}}
    end,
    Counts = [receive {Ref, C} -> C after 120000 -> timeout end || _ <- lists:seq(1, Senders)],
    T1 = erlang:monotonic_time(),
    Got = lists:max([C || C <- Counts, is_integer(C)] ++ [Count0]) - Count0,
    Got =:= N orelse io:format("WARNING: ~p ~p size ~p: ~p of ~p messages arrived~s~n",
                               [Impl, Dir, Size, Got, N, [" (timed out)" || lists:member(timeout, Counts)]]),
    Secs = erlang:convert_time_unit(T1 - T0, native, nanosecond) / 1.0e9,
    Cpu = lists:sum([cpu(W) || W <- Watched]) - lists:sum(Cpu0),
    case Got of
        N -> #{msgs => N / Secs, mbs => N * Size / Secs / 1.0e6, cpu => Cpu * 1.0e6 / N};
        _ -> #{msgs => 0, mbs => 0, cpu => 0} % a lossy run counts as nothing delivered
    end.

sink_count(Dest) ->
    Ref = make_ref(),
    Dest ! {done, self(), Ref},
    receive {Ref, C} -> C after 60000 -> error({sink_timeout, Dest}) end.

call_ctl(Node, Cmd) ->
    Ref = make_ref(),
    {ctl, Node} ! {self(), Ref, Cmd},
    receive {Ref, V} -> V after 60000 -> error({ctl_timeout, Node, Cmd}) end.

%% CPU seconds of an implementation's OS process so far: the sum of its threads' run time (schedstat, ns),
%% finer than /proc/PID/stat's clock ticks.
cpu(Impl) ->
    Pid = integer_to_list(maps:get(Impl, get(ospids))),
    {ok, Tids} = file:list_dir("/proc/" ++ Pid ++ "/task"),
    Ns = lists:sum([case file:read_file("/proc/" ++ Pid ++ "/task/" ++ T ++ "/schedstat") of
                        {ok, B} -> binary_to_integer(hd(binary:split(B, <<" ">>)));
                        _ -> 0
                    end || T <- Tids]),
    Ns / 1.0e9.

pingpong(Reps, N) ->
    Res = interleave(?IMPLS ++ [c2c, e2e], Reps, fun(I) -> ping(I, N) end),
    Sub = fun(Keep) -> maps:filter(fun(I, _) -> lists:member(I, Keep) end, Res) end,
    [emit("pingpong_" ++ P, "us", Sub(?IMPLS), K) || {P, K} <- [{"p50", p50}, {"p99", p99}, {"p999", p999}]],
    [emit("pingpong_c2c_" ++ P, "us", Sub([c2c]), K) || {P, K} <- [{"p50", p50}, {"p99", p99}, {"p999", p999}]],
    [emit("pingpong_e2e_" ++ P, "us", Sub([e2e]), K) || {P, K} <- [{"p50", p50}, {"p99", p99}, {"p999", p999}]],
    ok.

%% c2c and e2e: the first node's ctl times Count round trips to the second node's echo.
ping(Pair, N) when Pair =:= c2c; Pair =:= e2e ->
    {First, Second} = case Pair of c2c -> {cnode, c2}; e2e -> {ei, e2} end,
    #{First := N1, Second := N2} = get(nodes),
    {P50, P99, P999, _} = call_ctl(N1, {ping, {echo, N2}, N}),
    #{p50 => P50 / 1000, p99 => P99 / 1000, p999 => P999 / 1000};
ping(Impl, N) ->
    Echo = {echo, maps:get(Impl, get(nodes))},
    Ts = ping_loop(Echo, N, []),
    S = list_to_tuple(lists:sort(Ts)),
    Us = fun(Q) -> erlang:convert_time_unit(element(max(1, trunc(N * Q) + 1), S), native, nanosecond) / 1000 end,
    #{p50 => Us(0.5), p99 => Us(0.99), p999 => Us(0.999)}.

ping_loop(_, 0, Acc) -> Acc;
ping_loop(Echo, N, Acc) ->
    T0 = erlang:monotonic_time(),
    Echo ! {self(), ping},
    receive ping -> ok after 10000 -> error({ping_timeout, Echo}) end,
    ping_loop(Echo, N - 1, [erlang:monotonic_time() - T0 | Acc]).

%% 120 callers on this node call gs on the target for Ms milliseconds: calls/s.
gencall(Reps, Ms) ->
    Res = interleave(?IMPLS, Reps, fun(I) -> calls(I, 120, Ms) end),
    emit("gencall_120", "calls/s", Res, rate).

calls(Impl, Callers, Ms) ->
    Gs = {gs, maps:get(Impl, get(nodes))},
    Self = self(),
    T0 = erlang:monotonic_time(millisecond),
    End = T0 + Ms,
    Pids = [spawn_link(fun() -> Self ! {self(), call_loop(Gs, End, 0)} end) || _ <- lists:seq(1, Callers)],
    Total = lists:sum([receive {P, C} -> C end || P <- Pids]),
    T1 = erlang:monotonic_time(millisecond),
    #{rate => Total * 1000 / (T1 - T0)}.

call_loop(Gs, End, N) ->
    {req, N} = gen_server:call(Gs, {req, N}, 30000),
    case erlang:monotonic_time(millisecond) < End of
        true -> call_loop(Gs, End, N + 1);
        false -> N + 1
    end.

%% Peak RSS (VmHWM) of each implementation's OS process over the phase.
peak_rss() ->
    maps:foreach(
      fun(Impl, Pid) ->
              {ok, B} = file:read_file("/proc/" ++ integer_to_list(Pid) ++ "/status"),
              [KB] = [list_to_integer(string:trim(string:trim(binary_to_list(V)), trailing, " kB"))
                      || <<"VmHWM:", V/binary>> <- binary:split(B, <<"\n">>, [global])],
              Name = case Impl of c2 -> "peak_rss_c2"; e2 -> "peak_rss_e2"; _ -> "peak_rss" end,
              line(Name, impl_name(Impl), KB, "KiB", [KB])
      end, get(ospids)).

%% Memory per idle BEAM process, for comparison with cnode_mem: resident-set growth of this node while N
%% processes wait in receive.
proc_mem(N, Out) ->
    erlang:garbage_collect(),
    R0 = vmrss_kib(),
    Pids = [spawn(fun() -> receive stop -> ok end end) || _ <- lists:seq(1, N)],
    R1 = vmrss_kib(),
    B = (R1 - R0) * 1024 / N,
    L = io_lib:format("bench=mem_per_proc impl=beam value=~s unit=bytes runs=~b~n", [fmt(B), N]),
    io:put_chars(L),
    ok = file:write_file(Out, L, [append]),
    [P ! stop || P <- Pids],
    ok.

vmrss_kib() ->
    {ok, B} = file:read_file("/proc/self/status"),
    hd([list_to_integer(string:trim(string:trim(binary_to_list(V)), trailing, " kB"))
        || <<"VmRSS:", V/binary>> <- binary:split(B, <<"\n">>, [global])]).
