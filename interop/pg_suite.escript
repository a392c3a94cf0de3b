#!/usr/bin/env escript
%%! -hidden -connect_all false
%% Interop tests of OTP's pg on the C node (otp/pg.c): build/cnode --pg with two erl nodes pa, pb that run the
%% default scope (-kernel start_pg true) and a named scope `named` (pg:start/1). Run by interop/run.sh with
%% --cnode BIN --repo DIR --build DIR --epmd-port P --free-port P2 --tmp DIR --pidfile F [test...] and
%% ERL_EPMD_PORT=P; the harness is interop/interop_lib.erl. This node (pgs@127.0.0.1) is hidden: it drives the
%% peers with erpc and the C node through cnode_ctl ({pg_join, S, G}, {pg_leave, S, G, P}, {pg_members, S, G},
%% {pg_monitor, S, G}). Output: `ok name` / `FAIL name: reason`, then `pg_suite: N passed, N failed`.
-mode(compile).
-export([main/1]).

-import(interop_lib, [cfg/1, info/2, step/1, fail/2, now_ms/0, start_cnode/3, start_erl/2, signal/2, status/1,
                      wait_exit/2, ctl/3, wait_until/3, remote_fun/2]).

-define(CN, 'pgcn@127.0.0.1').
-define(T, 5000).
%% How soon a change must be seen on every node.
-define(SEEN_MS, 1000).

tests() ->
    [{c_members_seen_by_beam, 30, fun t_c_members/0},
     {beam_members_seen_by_c, 20, fun t_beam_members/0},
     {beam_monitors_report_c, 20, fun t_beam_monitors/0},
     {c_monitors_report_beam, 20, fun t_c_monitors/0},
     {killed_c_member_leaves, 20, fun t_member_exit/0},
     {wire_discover_join_leave, 20, fun t_wire/0},
     {scope_calls, 20, fun t_scope_calls/0},
     {ctl_both_forms, 20, fun t_ctl_forms/0},
     {killed_c_node_leaves, 30, fun t_kill_cnode/0}].

main(Args) ->
    Tmp = arg_value("--tmp", Args),
    Lib = filename:join(filename:dirname(escript:script_name()), "interop_lib.erl"),
    case Tmp =/= undefined andalso compile:file(Lib, [{outdir, Tmp}, return_errors]) of
        {ok, _} -> true = code:add_patha(Tmp);
        Err -> io:format("FAIL setup: cannot compile ~ts into ~p: ~p~npg_suite: 0 passed, 1 failed~n", [Lib, Tmp, Err]),
               halt(1)
    end,
    interop_lib:main(Args, "pg_suite", tests(),
                     #{node => 'pgs@127.0.0.1', budget_ms => 110000, fail_logs => ["cnode", "erl"]}).

arg_value(_, []) -> undefined;
arg_value(K, [K, V | _]) -> V;
arg_value(K, [_ | T]) -> arg_value(K, T).

%% ---------------------------------------------------------------------------------------------------------
%% the cluster: pa, pb (suite scope) and the C node pgcn

peers() -> ['pa@127.0.0.1', 'pb@127.0.0.1'].

in_suite_scope(F) ->
    Scope = get(scope),
    put(scope, suite),
    try F() after put(scope, Scope) end.

%% pa and pb running the default scope and `named`, connected to each other and to the C node.
cluster() ->
    [A, B] = peers(),
    [case persistent_term:get({peer, N}, undefined) =/= undefined andalso status(persistent_term:get({peer, N})) of
         running -> ok;
         _ -> {H, N} = in_suite_scope(fun() ->
                                              start_erl(hd(string:split(atom_to_list(N), "@")),
                                                        #{args => ["-kernel", "start_pg", "true"]})
                                      end),
              persistent_term:put({peer, N}, H),
              {ok, _} = rpc(N, pg, start, [named])
     end || N <- [A, B]],
    cnode(),
    true = rpc(A, net_kernel, connect_node, [B]),
    [true = rpc(N, net_kernel, connect_node, [?CN]) || N <- [A, B]],
    ok.

cnode() ->
    case persistent_term:get(pgcn, undefined) of
        H when H =/= undefined -> case status(H) of running -> H; _ -> start_c() end;
        _ -> start_c()
    end.
start_c() ->
    {H, _} = in_suite_scope(fun() -> start_cnode("cnode_pg", atom_to_list(?CN), ["--pg"]) end),
    persistent_term:put(pgcn, H),
    H.

rpc(N, M, F, A) ->
    try erpc:call(N, M, F, A, ?T)
    catch Class:Why -> fail("~ts: ~ts:~ts/~b raised ~p:~0tp", [N, M, F, length(A), Class, Why])
    end.

c(Req) ->
    case ctl(?CN, Req, ?T) of
        {ok, R} -> R;
        timeout -> fail("cnode_ctl did not answer ~0tp within ~b ms", [Req, ?T])
    end.

wait_for(What, Ms, F) ->
    T0 = now_ms(),
    case wait_until(F, Ms, What) of
        true -> info("~ts: after ~b ms", [What, now_ms() - T0]);
        false -> fail("~ts: not within ~b ms", [What, Ms])
    end.

members(N, Scope, G) -> lists:sort(rpc(N, pg, get_members, [Scope, G])).
c_members(Scope, G) -> lists:sort(c({pg_members, Scope, G})).

%% Every peer sees exactly Pids in Scope's group G within SEEN_MS.
seen_everywhere(What, Scope, G, Pids) ->
    Want = lists:sort(Pids),
    wait_for(What, ?SEEN_MS, fun() -> lists:all(fun(N) -> members(N, Scope, G) =:= Want end, peers()) end).

c_join(Scope, G) ->
    case c({pg_join, Scope, G}) of
        {ok, P} when node(P) =:= ?CN -> P;
        R -> fail("pg_join ~p ~p gave ~0tp", [Scope, G, R])
    end.

%% A process on node N that only waits (a pg member for the tests).
idle(N) -> rpc(N, erlang, spawn, [timer, sleep, [infinity]]).

%% A process on N that runs Call (pg:monitor_scope() or pg:monitor(G)) and forwards what it gets to this process.
beam_monitor(N, Call) ->
    Me = self(),
    F = remote_fun("fun() -> R = " ++ Call ++ ", Me ! {mon_ready, self(), R}, "
                   "(fun L() -> receive X -> Me ! {mon, self(), X}, L() end end)() end", #{'Me' => Me}),
    P = rpc(N, erlang, spawn, [F]),
    receive {mon_ready, P, R} -> {P, R} after ?T -> fail("~ts on ~ts did not answer", [Call, N]) end.

mon_msg(P, What) ->
    receive {mon, P, M} -> M after ?T -> fail("monitor on ~p: no message while waiting for ~ts", [P, What]) end.

%% ---------------------------------------------------------------------------------------------------------
%% tests

t_c_members() ->
    cluster(),
    [A, B] = peers(),
    step("C members join g1 of the default scope and g2 of `named`"),
    P1 = c_join(pg, g1),
    P2 = c_join(pg, g1),
    P3 = c_join(named, g2),
    seen_everywhere("C members of pg/g1 on pa and pb", pg, g1, [P1, P2]),
    seen_everywhere("C member of named/g2 on pa and pb", named, g2, [P3]),
    [] = members(A, pg, g2),
    step("which_groups on the peers lists them; the C node sees its own members"),
    true = lists:member(g1, rpc(B, pg, which_groups, [])),
    [P3] = c_members(named, g2),
    step("a C member leaves"),
    ok = c({pg_leave, pg, g1, P1}),
    not_joined = c({pg_leave, pg, g1, P1}),
    seen_everywhere("P1 left pg/g1", pg, g1, [P2]),
    ok = c({pg_leave, pg, g1, P2}),
    ok = c({pg_leave, named, g2, P3}),
    seen_everywhere("pg/g1 empty", pg, g1, []),
    seen_everywhere("named/g2 empty", named, g2, []),
    ok.

t_beam_members() ->
    cluster(),
    [A, B] = peers(),
    step("BEAM members on pa and pb; one joins twice"),
    X = idle(A),
    Y = idle(B),
    ok = rpc(A, pg, join, [g3, X]),
    ok = rpc(A, pg, join, [g3, X]),
    ok = rpc(B, pg, join, [named, g3, Y]),
    wait_for("pa's member twice in C's pg/g3", ?SEEN_MS, fun() -> c_members(pg, g3) =:= [X, X] end),
    wait_for("pb's member in C's named/g3", ?SEEN_MS, fun() -> c_members(named, g3) =:= [Y] end),
    ok = rpc(A, pg, leave, [g3, X]),
    wait_for("one join left", ?SEEN_MS, fun() -> c_members(pg, g3) =:= [X] end),
    step("a BEAM member exits"),
    exit(Y, kill),
    wait_for("pb's member gone from C's named/g3", ?SEEN_MS, fun() -> c_members(named, g3) =:= [] end),
    exit(X, kill),
    wait_for("pa's member gone from C's pg/g3", ?SEEN_MS, fun() -> c_members(pg, g3) =:= [] end),
    ok.

t_beam_monitors() ->
    cluster(),
    [A, B] = peers(),
    {SP, {SRef, _}} = beam_monitor(A, "pg:monitor_scope()"),
    {GP, {GRef, []}} = beam_monitor(B, "pg:monitor(named, g4)"),
    step("a C member joins pg/g4 and named/g4"),
    P = c_join(pg, g4),
    {SRef, join, g4, [P]} = mon_msg(SP, "scope join"),
    Q = c_join(named, g4),
    {GRef, join, g4, [Q]} = mon_msg(GP, "group join"),
    step("they leave"),
    ok = c({pg_leave, pg, g4, P}),
    {SRef, leave, g4, [P]} = mon_msg(SP, "scope leave"),
    exit(Q, kill),
    {GRef, leave, g4, [Q]} = mon_msg(GP, "group leave of an exited member"),
    exit(SP, kill),
    exit(GP, kill),
    exit(P, kill),
    ok.

t_c_monitors() ->
    cluster(),
    [A, _] = peers(),
    X = idle(A),
    ok = rpc(A, pg, join, [g6, X]),
    wait_for("pa's member in C's pg/g6", ?SEEN_MS, fun() -> c_members(pg, g6) =:= [X] end),
    step("C monitors of the scope and of g6"),
    {ok, SM} = c({pg_monitor, pg, '$scope'}),
    {ok, GM} = c({pg_monitor, pg, g6}),
    Received = fun(R) -> c({pubsub_received, R}) end,
    wait_for("both monitoring", ?T, fun() -> length(Received(SM)) =:= 1 andalso length(Received(GM)) =:= 1 end),
    [{monitoring, SRef, #{g6 := [X]}}] = Received(SM),
    [{monitoring, GRef, [X]}] = Received(GM),
    step("a BEAM member joins, another exits"),
    Y = idle(A),
    ok = rpc(A, pg, join, [g6, Y]),
    exit(X, kill),
    Want = [{join, g6, [Y]}, {leave, g6, [X]}],
    wait_for("the scope monitor's notifications", ?T, fun() -> tl(Received(SM)) =:= [{SRef, V, G, Ps} || {V, G, Ps} <- Want] end),
    wait_for("the group monitor's notifications", ?T, fun() -> tl(Received(GM)) =:= [{GRef, V, G, Ps} || {V, G, Ps} <- Want] end),
    exit(Y, kill),
    ok.

t_member_exit() ->
    cluster(),
    step("a killed C member disappears everywhere"),
    P = c_join(pg, g5),
    Q = c_join(pg, g5),
    seen_everywhere("two C members", pg, g5, [P, Q]),
    exit(P, kill),
    seen_everywhere("killed member gone from pa and pb", pg, g5, [Q]),
    [Q] = c_members(pg, g5),
    step("a C member ending normally"),
    Q ! {self(), bye},            % the echo process answers, then...
    receive bye -> ok after ?T -> fail("echo did not answer", []) end,
    exit(Q, normal),              % ...a normal exit signal does not end it
    exit(Q, shutdown),
    seen_everywhere("ended member gone", pg, g5, []),
    [] = c_members(pg, g5),
    ok.

%% This node plays a remote scope `wired` by hand: the 3-tuple discover of OTP 26+, sync, join, leave, garbage.
t_wire() ->
    cluster(),
    {ok, _} = c({pg_join, wired, w0}),        % starts scope `wired` on the C node with one member
    [M0] = c_members(wired, w0),
    step("{discover, Peer, Vsn} is answered with sync and discover"),
    {wired, ?CN} ! {discover, self(), 1},
    CScope = receive {'$gen_cast', {sync, S, [{w0, [M0]}]}} -> S after ?T -> fail("no sync", []) end,
    receive {discover, CScope} -> ok after ?T -> fail("no discover back", []) end,
    step("our sync, join and leave show in the C node's table"),
    X = idle(hd(peers())),
    {wired, ?CN} ! {'$gen_cast', {sync, self(), [{w1, [X, X]}]}},
    wait_for("synced members", ?T, fun() -> c_members(wired, w1) =:= [X, X] end),
    {wired, ?CN} ! {join, self(), w2, [X]},
    {wired, ?CN} ! {leave, self(), X, [w1]},
    wait_for("join and leave", ?T, fun() -> c_members(wired, w2) =:= [X] andalso c_members(wired, w1) =:= [X] end),
    step("a C join is sent to us as pg sends it"),
    P = c_join(wired, w3),
    receive {join, CScope, w3, P} -> ok after ?T -> fail("no join message", []) end,
    ok = c({pg_leave, wired, w3, P}),
    receive {leave, CScope, P, [w3]} -> ok after ?T -> fail("no leave message", []) end,
    step("malformed messages are ignored"),
    [{wired, ?CN} ! G || G <- [junk, {join, self()}, {leave, self(), [x], notalist}, {join, self(), w2, [1, 2]},
                               {discover, notapid}, {'$gen_cast', {sync, self(), [bad]}}, {sync, self(), []}]],
    [X] = c_members(wired, w2),
    step("a sync replaces what we said before"),
    {wired, ?CN} ! {'$gen_cast', {sync, self(), []}},
    wait_for("our groups gone", ?T, fun() -> c_members(wired, w1) =:= [] andalso c_members(wired, w2) =:= [] end),
    exit(X, kill),
    ok.

%% pg's own calls to the C scope, as gen_server:call({pg, CNode}, ...) from this node: monitor, {monitor, G},
%% {demonitor, Ref}, {join_local, G, Pids}, {leave_local, G, Pids}.
t_scope_calls() ->
    cluster(),
    S = {pg, ?CN},
    Call = fun(Req) -> gen_server:call(S, Req, ?T) end,
    {SRef, Groups} = Call(monitor),
    is_map(Groups) orelse fail("monitor gave ~p", [Groups]),
    P = c_join(pg, g9),
    receive {SRef, join, g9, [P]} -> ok after ?T -> fail("no scope join notification", []) end,
    ok = Call({demonitor, SRef}),
    false = Call({demonitor, SRef}),
    {GRef, [P]} = Call({monitor, g9}),
    ok = Call({join_local, g9, [P, P]}),
    receive {GRef, join, g9, [P, P]} -> ok after ?T -> fail("no group join notification", []) end,
    [P, P, P] = c_members(pg, g9),
    ok = Call({leave_local, g9, P}),
    receive {GRef, leave, g9, [P]} -> ok after ?T -> fail("no group leave notification", []) end,
    ok = Call({leave_local, g9, [P, P]}),
    not_joined = Call({leave_local, g9, P}),
    {error, badarg} = Call(nonsense),
    seen_everywhere("g9 empty", pg, g9, []),
    ok = Call({demonitor, GRef}),
    exit(P, kill),
    ok.

%% The pg_* commands as gen_server calls give what the {From, Ref, Cmd} form gives.
t_ctl_forms() ->
    cluster(),
    G = fun(Req) -> gen_server:call({cnode_ctl, ?CN}, Req, ?T) end,
    {ok, P} = G({pg_join, pg, g8}),
    node(P) =:= ?CN orelse fail("pg_join as a call gave ~p", [P]),
    [P] = G({pg_members, pg, g8}),
    [P] = c({pg_members, pg, g8}),
    {ok, M} = G({pg_monitor, pg, g8}),
    wait_for("the monitor's first record", ?T, fun() -> length(G({pubsub_received, M})) =:= 1 end),
    [{monitoring, _, [P]}] = G({pubsub_received, M}),
    ok = G({pg_leave, pg, g8, P}),
    not_joined = G({pg_leave, pg, g8, P}),
    [] = G({pg_members, pg, g8}),
    {error, unknown_command} = G({pg_join, pg}),
    {error, unknown_command} = c({pg_join, pg}),
    ok.

t_kill_cnode() ->
    cluster(),
    [A, _] = peers(),
    P = c_join(pg, g7),
    Q = c_join(named, g7),
    X = idle(A),
    ok = rpc(A, pg, join, [g7, X]),
    seen_everywhere("C and BEAM members of pg/g7", pg, g7, [P, X]),
    seen_everywhere("C member of named/g7", named, g7, [Q]),
    step("kill -9 the C node"),
    H = cnode(),
    signal(H, "KILL"),
    {ok, _} = wait_exit(H, 5000),
    seen_everywhere("C members gone from pg/g7", pg, g7, [X]),
    seen_everywhere("C member gone from named/g7", named, g7, []),
    exit(X, kill),
    ok.
