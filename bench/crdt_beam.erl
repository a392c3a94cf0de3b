%% crdt_beam: the BEAM side of bench/crdt.sh. Three BEAM nodes (started with peer/0) each run the interop suites'
%% delta_crdt peer (interop/crdt_peer.erl) as 'bench.Crdt' with Horde's sync interval and monitors; a driver node
%% (main/1) runs the scenario of bench/crdt_bench.c on them and prints the same `bench=... impl=beam` lines:
%% memory per key (process_info memory of A's CRDT after a GC, around N writes), A and B synced, then C joins:
%% time until C's root is A's, CPU of the three VMs (statistics(runtime)), bytes and packets they sent each other
%% (inet:getstat of the distribution sockets: dist headers and 4-byte lengths included), and CPU per idle round.
-module(crdt_beam).
-export([peer/0, main/1, load/2, dist_out/1]).

-define(NAME, 'bench.Crdt').
-define(INTERVAL, 300).

peer() ->
    io:format("ready~n"),
    timer:sleep(infinity).

main([NS | Nodes0]) ->
    N = list_to_integer(NS),
    Nodes = [list_to_atom(X) || X <- Nodes0],
    [A, B, C] = Nodes,
    [wait_up(X, 100) || X <- Nodes],
    [{ok, _} = rpc:call(X, crdt_peer, start, [?NAME, random, #{sync_interval => ?INTERVAL, monitor => true}])
     || X <- Nodes],
    PA = rpc:call(A, erlang, whereis, [?NAME]),
    M0 = mem(A, PA),
    ok = rpc:call(A, ?MODULE, load, [N, A], infinity),
    _ = call(A, root),
    M1 = mem(A, PA),
    T0 = now_ms(),
    nbrs(A, [B]),
    nbrs(B, [A]),
    wait_root(A, B),
    Pair = now_ms() - T0,
    settle(Nodes),
    {Cpu0, Out0} = {cpu(Nodes), out(Nodes)},
    T1 = now_ms(),
    [nbrs(X, Nodes -- [X]) || X <- Nodes],
    wait_root(A, C),
    Join = now_ms() - T1,
    {Cpu1, Out1} = {cpu(Nodes), out(Nodes)},
    settle(Nodes),
    {R0, I0} = {rounds(Nodes), cpu(Nodes)},
    timer:sleep(case os:getenv("CRDT_IDLE_MS") of false -> 4000; S -> list_to_integer(S) end),
    {R1, I1} = {rounds(Nodes), cpu(Nodes)},
    {Bytes, Pkts} = sub(Out1, Out0),
    Line = fun(Bench, V, Unit) -> io:format("bench=~s_~b impl=beam value=~s unit=~s~n", [Bench, N, V, Unit]) end,
    Line("crdt_mem_per_key", fmt((M1 - M0) / max(N, 1), 0), "bytes"),
    Line("crdt_pair_sync", fmt(Pair, 1), "ms"),
    Line("crdt_join", fmt(Join, 1), "ms"),
    Line("crdt_join_cpu", fmt((Cpu1 - Cpu0) / 1000, 3), "cpu_s"),
    Line("crdt_join_bytes", integer_to_list(Bytes), "bytes"),
    Line("crdt_join_msgs", integer_to_list(Pkts), "messages"),
    Line("crdt_idle_round", fmt(case R1 - R0 of 0 -> 0; R -> (I1 - I0) * 1000 / R end, 1), "us_cpu"),
    halt(0).

fmt(X, D) -> float_to_list(float(X), [{decimals, D}]).
now_ms() -> erlang:monotonic_time(millisecond).

wait_up(X, 0) -> io:format("crdt_beam: ~p did not come up~n", [X]), halt(1);
wait_up(X, K) -> case net_adm:ping(X) of pong -> ok; pang -> timer:sleep(100), wait_up(X, K - 1) end.

call(X, Req) -> crdt_peer:call({?NAME, X}, Req, 600000).
nbrs(X, Ps) -> {?NAME, X} ! {set_neighbours, [{?NAME, P} || P <- Ps]}.

mem(X, P) ->
    true = rpc:call(X, erlang, garbage_collect, [P]),
    {memory, M} = rpc:call(X, erlang, process_info, [P, memory]),
    M.

%% N registrations {key, <<"worker-I">>} => {{bench, Node}, Pid, nil}, written on the CRDT's own node.
load(N, Node) ->
    Me = self(),
    lists:foreach(fun(I) ->
                          K = {key, <<"worker-", (integer_to_binary(I))/binary>>},
                          ok = crdt_peer:call(?NAME, {put, K, {{bench, Node}, Me, nil}})
                  end, lists:seq(0, N - 1)).

wait_root(X, Y) ->
    case call(X, root) =:= call(Y, root) of
        true -> ok;
        false -> timer:sleep(20), wait_root(X, Y)
    end.

%% Until no key list was found or delta joined for 3 intervals + 500 ms (rounds begun before the roots met).
settle(Nodes) -> settle(Nodes, busy(Nodes), now_ms(), now_ms()).
settle(Nodes, Last, Since, Start) ->
    timer:sleep(100),
    B = busy(Nodes),
    T = now_ms(),
    if T - Start > 120000 -> ok;
       B =/= Last -> settle(Nodes, B, T, Start);
       T - Since >= 3 * ?INTERVAL + 500 -> ok;
       true -> settle(Nodes, B, Since, Start)
    end.

busy(Nodes) ->
    lists:sum([maps:get(key_lists, S, 0) + maps:get(deltas_in, S, 0) || X <- Nodes, S <- [call(X, stats)]]).

rounds(Nodes) -> lists:sum([2 * maps:get(syncs, call(X, stats), 0) || X <- Nodes]).

cpu(Nodes) -> lists:sum([element(1, rpc:call(X, erlang, statistics, [runtime])) || X <- Nodes]).

%% {send_oct, send_cnt} of this node's distribution sockets to the other CRDT nodes (not to the driver).
dist_out(Peers) ->
    lists:foldl(fun({Node, Port}, {O, Cn}) when is_port(Port) ->
                        case lists:member(Node, Peers) andalso inet:getstat(Port, [send_oct, send_cnt]) of
                            {ok, [{send_oct, So}, {send_cnt, Sc}]} -> {O + So, Cn + Sc};
                            {ok, [{send_cnt, Sc}, {send_oct, So}]} -> {O + So, Cn + Sc};
                            _ -> {O, Cn}
                        end;
                   (_, Acc) -> Acc
                end, {0, 0}, erlang:system_info(dist_ctrl)).

out(Nodes) ->
    lists:foldl(fun(X, {O, Cn}) -> {O1, C1} = rpc:call(X, ?MODULE, dist_out, [Nodes]), {O + O1, Cn + C1} end,
                {0, 0}, Nodes).

sub({A1, B1}, {A0, B0}) -> {A1 - A0, B1 - B0}.
