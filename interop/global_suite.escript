#!/usr/bin/env escript
%%! -hidden -connect_all false
%% Interop tests of issue 11: build/cnode as a full member of OTP's `global`. Run by interop/run.sh with
%% --cnode BIN --repo DIR --build DIR --epmd-port P --free-port P2 --tmp DIR --pidfile F [test...] and
%% ERL_EPMD_PORT=P; the harness is interop/interop_lib.erl, compiled into --tmp at startup. Unlike the other
%% suites, the peers here mesh for real: three erl nodes ga, gb, gc with default settings (connect_all true,
%% prevent_overlapping_partitions true), fully connected, and the C node gcn@127.0.0.1. This node
%% (g@127.0.0.1) is hidden, so it stays out of everyone's nodes() and out of global; it drives the peers with
%% erpc and the C node through cnode_ctl and puppets. Output: `ok name` / `FAIL name: reason`, then
%% `global_suite: N passed, N failed`.
-mode(compile).
-export([main/1]).

-import(interop_lib, [cfg/1, info/2, step/1, fail/2, flat/2, now_ms/0, start_cnode/3, start_erl/2, signal/2,
                      status/1, wait_exit/2, ctl/3, wait_until/3, remote_fun/1, remote_fun/2]).

-define(CN_NAME, "gcn@127.0.0.1").
-define(CN, 'gcn@127.0.0.1').
-define(T, 5000).
%% "returns at once": global:sync/0 on a synced node answers in well under this.
-define(SYNC_MS, 2000).

tests() ->
    [{mesh_and_sync, 40, fun t_mesh_and_sync/0},
     {global_names, 30, fun t_global_names/0},
     {locks, 30, fun t_locks/0},
     {partial_disconnect, 40, fun t_partial_disconnect/0},
     {kill_restart, 40, fun t_kill_restart/0},
     {hidden_node, 20, fun t_hidden_node/0},
     {connect_all_false, 20, fun t_connect_all_false/0},
     {resolve_it_rpc, 20, fun t_resolve_it/0}].

main(Args) ->
    Tmp = arg_value("--tmp", Args),
    Lib = filename:join(filename:dirname(escript:script_name()), "interop_lib.erl"),
    case Tmp =/= undefined andalso compile:file(Lib, [{outdir, Tmp}, return_errors]) of
        {ok, _} -> true = code:add_patha(Tmp);
        Err -> io:format("FAIL setup: cannot compile ~ts into ~p: ~p~nglobal_suite: 0 passed, 1 failed~n",
                         [Lib, Tmp, Err]),
               halt(1)
    end,
    interop_lib:main(Args, "global_suite", tests(),
                     #{node => 'g@127.0.0.1', budget_ms => 115000, fail_logs => ["cnode", "erl"]}).

arg_value(_, []) -> undefined;
arg_value(K, [K, V | _]) -> V;
arg_value(K, [_ | T]) -> arg_value(K, T).

%% ---------------------------------------------------------------------------------------------------------
%% the cluster: ga, gb, gc (suite scope, started once) and the C node gcn

peers() -> ['ga@127.0.0.1', 'gb@127.0.0.1', 'gc@127.0.0.1'].

%% Starts what is not running in the suite's scope (so it outlives the test that started it).
in_suite_scope(F) ->
    Scope = get(scope),
    put(scope, suite),
    try F() after put(scope, Scope) end.

cluster() ->
    [A, B, C] = peers(),
    [case persistent_term:get({peer, N}, undefined) =/= undefined andalso status(persistent_term:get({peer, N})) of
         running -> ok;
         _ -> {H, N} = in_suite_scope(fun() -> start_erl(hd(string:split(atom_to_list(N), "@")), #{}) end),
              persistent_term:put({peer, N}, H)
     end || N <- [A, B, C]],
    true = rpc(A, net_kernel, connect_node, [B]),
    true = rpc(A, net_kernel, connect_node, [C]),
    ok = wait_for("ga, gb, gc fully connected", 5000,
                  fun() -> lists:all(fun(N) -> [A, B, C] -- [N | rpc(N, erlang, nodes, [])] =:= [] end,
                                     [A, B, C]) end),
    [ok = rpc(N, global, sync, []) || N <- [A, B, C]],
    ok.

%% The C node gcn (suite scope); started when not running.
cnode() ->
    case persistent_term:get(gcn, undefined) of
        H when H =/= undefined -> case status(H) of running -> H; _ -> start_gcn() end;
        _ -> start_gcn()
    end.
start_gcn() ->
    {H, Cr} = in_suite_scope(fun() -> start_cnode("cnode_g", ?CN_NAME, []) end),
    persistent_term:put(gcn, H),
    persistent_term:put(gcn_creation, Cr),
    H.

rpc(N, M, F, A) -> erpc:call(N, M, F, A, ?T).

c(Req) ->
    case ctl(?CN, Req, ?T) of
        {ok, R} -> R;
        timeout -> fail("cnode_ctl did not answer ~p within ~b ms", [Req, ?T])
    end.

%% The visible nodes the C node is connected to (this hidden node left out).
cnode_nodes() -> lists:sort(c(nodes) -- [node()]).

wait_for(What, Ms, F) ->
    case wait_until(F, Ms, What) of
        true -> ok;
        false -> fail("~ts: not within ~b ms", [What, Ms])
    end.

all_four() -> lists:sort([?CN | peers()]).

%% nodes() of ga, gb, gc and of the C node all show the same four nodes.
meshed() ->
    lists:all(fun(N) -> lists:sort([N | rpc(N, erlang, nodes, [])]) =:= all_four() end, peers())
        andalso lists:sort([?CN | cnode_nodes()]) =:= all_four().

%% global:sync() on each of ga, gb, gc answers within SYNC_MS.
sync_everywhere(What) ->
    [begin
         T0 = now_ms(),
         R = try erpc:call(N, global, sync, [], ?SYNC_MS) catch C:E -> {C, E} end,
         R =:= ok orelse fail("~ts: global:sync() on ~ts gave ~p after ~b ms", [What, N, R, now_ms() - T0])
     end || N <- peers()],
    ok.

%% ga connects to the C node; everyone meshes within 1 s.
join(What) ->
    [A | _] = peers(),
    T0 = now_ms(),
    true = rpc(A, net_kernel, connect_node, [?CN]),
    case wait_until(fun meshed/0, 1000, "mesh") of
        true -> info("~ts: meshed after ~b ms", [What, now_ms() - T0]);
        false -> fail("~ts: not meshed within 1 s: ~p, cnode ~p", [What, [{N, rpc(N, erlang, nodes, [])} || N <- peers()],
                                                                   cnode_nodes()])
    end.

%% The C node in the mesh (started and joined when it is not).
mesh() ->
    cluster(),
    cnode(),
    case meshed() of
        true -> ok;
        false -> join("mesh")
    end,
    sync_everywhere("mesh").

puppet() ->
    P = spawn(?CN, cnode_demo, puppet, [self()]),
    node(P) =:= ?CN orelse fail("spawn(~ts, cnode_demo, puppet, _) gave ~p", [?CN, P]),
    P.

whereis_everywhere(Name) -> [{N, rpc(N, global, whereis_name, [Name])} || N <- peers()].

%% ---------------------------------------------------------------------------------------------------------
%% tests

t_mesh_and_sync() ->
    step("starting ga, gb, gc"),
    cluster(),
    step("starting the C node"),
    cnode(),
    [] = cnode_nodes(),
    step("ga connects to the C node"),
    join("first join"),
    step("global:sync() on ga, gb, gc"),
    sync_everywhere("after the join"),
    step("global:sync() on the C node"),
    ok = c(global_sync),
    ok.

t_global_names() ->
    mesh(),
    [A, B, _] = peers(),
    step("gb registers x for a C process"),
    X = puppet(),
    yes = rpc(B, global, register_name, [x, X]),
    [{_, X}, {_, X}, {_, X}] = whereis_everywhere(x),
    X = c({global_whereis, x}),
    no = rpc(A, global, register_name, [x, self()]),
    step("the C node registers y for a C process"),
    Y = puppet(),
    yes = c({global_register, y, Y}),
    [{_, Y}, {_, Y}, {_, Y}] = whereis_everywhere(y),
    no = c({global_register, y, X}),              % taken
    no = c({global_register, y2, X}),             % X already has a global name
    step("global:send(y, M) from the C node and from ga"),
    ok = c({global_send, y, hello_from_c}),
    receive {puppet, Y, hello_from_c} -> ok after ?T -> fail("global_send from C did not reach y", []) end,
    Y = rpc(A, global, send, [y, hello_from_ga]),
    receive {puppet, Y, hello_from_ga} -> ok after ?T -> fail("global:send from ga did not reach y", []) end,
    {error, not_found} = c({global_send, nobody, m}),
    step("unregister from BEAM and from C"),
    _ = rpc(B, global, unregister_name, [x]),
    undefined = c({global_whereis, x}),
    ok = c({global_unregister, y}),
    [{_, undefined}, {_, undefined}, {_, undefined}] = whereis_everywhere(y),
    step("a registered C process that ends loses its name everywhere"),
    yes = c({global_register, z, Y}),
    Y ! {'$puppet', {exit, normal}},
    wait_for("z unregistered on ga, gb, gc", 3000,
             fun() -> lists:all(fun({_, W}) -> W =:= undefined end, whereis_everywhere(z)) end),
    undefined = c({global_whereis, z}),
    X ! {'$puppet', {exit, normal}},
    ok.

t_locks() ->
    mesh(),
    [A, B, _] = peers(),
    step("global:trans({lock, self()}, F) on ga with default nodes"),
    Trans = remote_fun("fun() -> global:trans({lock, self()}, fun() -> done end) end"),
    done = erpc:call(A, Trans, ?T),
    step("global:set_lock and del_lock on gb with default nodes"),
    SetDel = remote_fun("fun() -> true = global:set_lock({res1, self()}), global:del_lock({res1, self()}) end"),
    true = erpc:call(B, SetDel, ?T),
    step("a lock set by C keeps BEAM requesters out until C deletes it"),
    true = c({global_set_lock, {res2, c_side}, default, -1}),
    Try = remote_fun("fun() -> global:set_lock({res2, beam_side}, [node() | nodes()], 0) end"),
    false = erpc:call(A, Try, ?T),
    true = c({global_del_lock, {res2, c_side}, default}),
    TryDel = remote_fun("fun() -> true = global:set_lock({res2, beam_side}, [node() | nodes()], 0), "
                        "global:del_lock({res2, beam_side}) end"),
    true = erpc:call(A, TryDel, ?T),
    step("a lock held by BEAM: C's set_lock with 0 retries fails, trans waits for it"),
    Self = self(),
    HolderF = remote_fun("fun() -> true = global:set_lock({res3, beam}), Self ! {locked, self()}, "
                         "receive release -> global:del_lock({res3, beam}), Self ! released end end",
                         #{'Self' => Self}),
    Holder = spawn(A, HolderF),
    receive {locked, Holder} -> ok after ?T -> fail("the BEAM holder did not lock res3", []) end,
    false = c({global_set_lock, {res3, c_side}, default, 0}),
    Ref = make_ref(),
    {cnode_ctl, ?CN} ! {self(), Ref, {global_trans, {res3, c_side}, default, -1}},
    receive {Ref, R0} -> fail("C trans answered ~p while BEAM held the lock", [R0]) after 300 -> ok end,
    Holder ! release,
    receive released -> ok after ?T -> fail("holder did not release", []) end,
    receive {Ref, in_trans} -> ok after 15000 -> fail("C trans did not get the lock after its release", []) end,
    receive {Ref, done} -> ok after ?T -> fail("C trans did not finish", []) end,
    step("the lock is free again"),
    Free = remote_fun("fun() -> R = global:set_lock({res3, other}, [node() | nodes()], 0), "
                      "global:del_lock({res3, other}), R end"),
    true = erpc:call(B, Free, ?T),
    step("a C lock holder that ends releases its lock"),
    true = c({global_set_lock, {res4, c_side}, [?CN | peers()], -1}),
    ok.

t_partial_disconnect() ->
    mesh(),
    [A, B, C] = peers(),
    Y = puppet(),
    yes = c({global_register, y, Y}),
    step("gb disconnects the C node"),
    true = rpc(B, erlang, disconnect_node, [?CN]),
    step("ga and gc ask the C node to disconnect (remove_connection); it obeys"),
    wait_for("the C node alone", 5000, fun() -> cnode_nodes() =:= [] end),
    %% ga and gc see the C node's close a moment after it made it (seen on OTP 27 under load): wait for it too.
    wait_for("ga, gb and gc without the C node", 5000,
             fun() -> lists:all(fun(N) -> lists:sort([N | rpc(N, erlang, nodes, [])]) =:= [A, B, C] end,
                                [A, B, C]) end),
    step("global:sync() everywhere"),
    sync_everywhere("after the partial disconnect"),
    [{_, undefined}, {_, undefined}, {_, undefined}] = whereis_everywhere(y),
    Y = c({global_whereis, y}),
    step("both partitions register `clash`: a BEAM process on gb, a C process on the C node"),
    Waiter = spawn(B, remote_fun("fun() -> receive stop -> ok end end")),
    yes = rpc(B, global, register_name, [clash, Waiter]),
    Q = puppet(),
    QRef = monitor(process, Q),
    yes = c({global_register, clash, Q}),
    step("a ping from gb brings everything back in sync"),
    pong = rpc(B, net_adm, ping, [?CN]),
    wait_for("meshed again", 3000, fun meshed/0),
    sync_everywhere("after the ping"),
    ok = c(global_sync),
    wait_for("y known everywhere again", 3000,
             fun() -> lists:all(fun({_, W}) -> W =:= Y end, whereis_everywhere(y)) end),
    step("the clash is resolved by random_exit_name: gb's process (smaller node) keeps it, the C one is killed"),
    wait_for("clash resolved everywhere", 3000,
             fun() -> lists:all(fun({_, W}) -> W =:= Waiter end, whereis_everywhere(clash)) andalso
                          c({global_whereis, clash}) =:= Waiter end),
    receive {'DOWN', QRef, process, Q, killed} -> ok;
            {'DOWN', QRef, process, Q, Why} -> fail("the C holder of clash ended with ~p, want killed", [Why])
    after ?T -> fail("the C holder of clash was not killed", [])
    end,
    Waiter ! stop,
    Y ! {'$puppet', {exit, normal}},
    ok.

t_kill_restart() ->
    mesh(),
    [A | _] = peers(),
    Y = puppet(),
    yes = c({global_register, y, Y}),
    step("kill -9 of the C node"),
    H = cnode(),
    Cr0 = persistent_term:get(gcn_creation),
    signal(H, "KILL"),
    {ok, _} = wait_exit(H, ?T),
    wait_for("the C node gone from ga, gb, gc", 5000,
             fun() -> not lists:any(fun(N) -> lists:member(?CN, rpc(N, erlang, nodes, [])) end, peers()) end),
    sync_everywhere("after the kill"),
    [{_, undefined}, {_, undefined}, {_, undefined}] = whereis_everywhere(y),
    step("restart (new creation); ga connects again"),
    cnode(),
    Cr1 = persistent_term:get(gcn_creation),
    Cr1 =/= Cr0 orelse fail("the restarted C node has the same creation ~p", [Cr1]),
    join("rejoin"),
    sync_everywhere("after the rejoin"),
    Trans = remote_fun("fun() -> global:trans({lock, self()}, fun() -> done end) end"),
    done = erpc:call(A, Trans, ?T),
    Y2 = puppet(),
    yes = c({global_register, y, Y2}),
    [{_, Y2}, {_, Y2}, {_, Y2}] = whereis_everywhere(y),
    ok = c({global_unregister, y}),
    Y2 ! {'$puppet', {exit, normal}},
    ok.

t_hidden_node() ->
    cluster(),
    [A, B, C] = peers(),
    Name = "ghid@127.0.0.1",
    HN = list_to_atom(Name),
    {_H, _} = start_cnode("cnode_ghid", Name, ["--hidden"]),
    step("ga connects to the hidden C node"),
    true = rpc(A, net_kernel, connect_node, [HN]),
    false = lists:member(HN, rpc(A, erlang, nodes, [])),
    true = lists:member(HN, rpc(A, erlang, nodes, [hidden])),
    timer:sleep(1000),
    [false = lists:member(HN, rpc(N, erlang, nodes, [connected])) || N <- [B, C]],
    sync_everywhere("with a hidden C node"),
    step("the hidden C node has no global_name_server"),
    {ok, {error, einval}} = ctl(HN, {global_whereis, x}, ?T),
    {ok, {error, einval}} = ctl(HN, {global_register, x, self()}, ?T),
    true = is_pid(rpc(A, erlang, whereis, [global_name_server])),
    ok.

t_connect_all_false() ->
    cluster(),
    [A, B, C] = peers(),
    Name = "gnca@127.0.0.1",
    NN = list_to_atom(Name),
    {_H, _} = start_cnode("cnode_gnca", Name, ["--connect-all", "false"]),
    step("ga connects to the C node started with --connect-all false"),
    true = rpc(A, net_kernel, connect_node, [NN]),
    true = lists:member(NN, rpc(A, erlang, nodes, [])),
    timer:sleep(1500),
    [false = lists:member(NN, rpc(N, erlang, nodes, [])) || N <- [B, C]],
    {ok, Ns} = ctl(NN, nodes, ?T),
    [A] = Ns -- [node()],
    true = rpc(A, erlang, disconnect_node, [NN]),
    ok.

%% A node resolving a clash asks the holder's node for global:resolve_it(Method, Name, Pid1, Pid2) by rpc: the C
%% node runs OTP's three methods (a fun it cannot run gets the default), by erpc and by rex's old-style call.
t_resolve_it() ->
    cnode(),
    Down = fun(P) -> receive {'DOWN', _, process, P, R} -> R after ?T -> fail("~p did not end", [P]) end end,
    step("random_exit_name: the pid on the greater node (the C one) is killed, the other wins"),
    P1 = puppet(),
    M1 = monitor(process, P1),
    Me = self(),
    Me = rpc:call(?CN, global, resolve_it, [fun global:random_exit_name/3, n1, Me, P1]),
    killed = Down(P1),
    demonitor(M1, [flush]),
    step("random_notify_name: the loser is told, not killed"),
    P2 = puppet(),
    Me = rpc:call(?CN, global, resolve_it, [fun global:random_notify_name/3, n2, P2, Me]),
    receive {puppet, P2, {global_name_conflict, n2}} -> ok after ?T -> fail("random_notify_name: no message", []) end,
    step("notify_all_name: both told, none wins (rex's old-style call)"),
    none = gen_server:call({rex, ?CN}, {call, global, resolve_it, [fun global:notify_all_name/3, n3, Me, P2], user}, ?T),
    receive {puppet, P2, {global_name_conflict, n3, Me}} -> ok after ?T -> fail("notify_all_name: P2 not told", []) end,
    receive {global_name_conflict, n3, P2} -> ok after ?T -> fail("notify_all_name: Me not told", []) end,
    step("a fun the C node cannot run: OTP's default"),
    M2 = monitor(process, P2),
    Me = rpc:call(?CN, global, resolve_it, [fun(_, A, _) -> A end, n4, P2, Me]),
    killed = Down(P2),
    demonitor(M2, [flush]),
    step("bad arguments: badarg; other functions: undef"),
    {badrpc, {'EXIT', {badarg, _}}} = rpc:call(?CN, global, resolve_it, [x, y, z, w]),
    {badrpc, {'EXIT', {undef, _}}} = rpc:call(?CN, global, resolve_it, [x, y, z]),
    {badrpc, {'EXIT', {badarg, _}}} = gen_server:call({rex, ?CN}, {call, global, resolve_it, [x, y, z, w], user}, ?T),
    ok.
