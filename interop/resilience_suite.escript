#!/usr/bin/env escript
%%! -noinput
%% The resilience kit (issue 22) against real erl nodes running SASL (application:start(sasl)): C alarms in
%% alarm_handler:get_alarms() on the --alarm-node, cleared on clear and on SIGTERM's graceful stop, sent again after
%% that node restarts; the --watch watchdog against a TCP port this script opens and closes ({dependency_down, db}
%% within two intervals, cleared after three passing checks); fuses through cnode_ctl (raw and gen_server forms,
%% {fuse_blown, Name} on the alarm node, healed after the reset), a call through a blown fuse failing at once without
%% a message sent, and failed calls melting a fuse. Run by interop/run.sh with --cnode BIN --repo DIR --build DIR
%% --epmd-port P --free-port P2 --tmp DIR --pidfile F. Output: `ok name` / `FAIL name: reason`, then
%% `resilience_suite: N passed, N failed`.
-mode(compile).

-import(interop_lib, [cfg/1, info/2, step/1, fail/2, now_ms/0, start_cnode/3, start_erl/2, signal/2, wait_exit/2,
                      wait_until/3, tail/2, ctl/3]).

-define(IV, 200). %% --watch-interval in these tests

tests() ->
    [{alarms_into_alarm_handler, 40, fun t_alarms/0},
     {watchdog_tcp, 40, fun t_watchdog/0},
     {alarms_again_after_reconnect, 60, fun t_reconnect/0},
     {alarm_node_sasl_late, 40, fun t_sasl_late/0},
     {alarms_cleared_on_sigterm, 40, fun t_sigterm/0},
     {fuse_blows_and_heals, 40, fun t_fuse/0},
     {fuse_call_blown_and_melting, 40, fun t_fuse_call/0},
     {fuse_bad_input, 30, fun t_fuse_bad/0},
     {config_from_env, 40, fun t_env/0}].

main(Args) ->
    Tmp = arg_value("--tmp", Args),
    Here = filename:dirname(escript:script_name()),
    Compiled = [compile:file(filename:join(Here, "interop_lib.erl"), [{outdir, Tmp}, return_errors])
                || Tmp =/= undefined],
    case Tmp =/= undefined andalso lists:all(fun({ok, _}) -> true; (_) -> false end, Compiled) of
        true -> true = code:add_patha(Tmp);
        false -> io:format("FAIL setup: cannot compile the harness into ~p: ~p~nresilience_suite: 0 passed, 1 failed~n",
                           [Tmp, Compiled]),
                 halt(1)
    end,
    interop_lib:main(Args, "resilience_suite", tests(), #{budget_ms => 250000, fail_logs => ["cnode", "erl"]}).

arg_value(_, []) -> undefined;
arg_value(K, [K, V | _]) -> V;
arg_value(K, [_ | T]) -> arg_value(K, T).

%% ---- helpers ------------------------------------------------------------------------------------------------

sasl_erl(Short) -> start_erl(Short, #{eval => "ok = application:start(sasl),"}).

cnode(Short, Extra) ->
    Name = Short ++ "@127.0.0.1",
    {H, _} = start_cnode("cnode_" ++ Short, Name, Extra),
    {H, list_to_atom(Name)}.

alarms(E) ->
    case rpc:call(E, alarm_handler, get_alarms, [], 5000) of
        L when is_list(L) -> L;
        Other -> fail("alarm_handler:get_alarms() on ~p: ~p", [E, Other])
    end.

%% Waits until Pred(alarms on E) holds; fails with what was there.
wait_alarms(E, Pred, Ms, What) ->
    T0 = now_ms(),
    case wait_until(fun() -> Pred(alarms(E)) end, Ms, What) of
        true -> now_ms() - T0;
        false -> fail("~ts: not within ~b ms; alarms on ~p: ~p", [What, Ms, E, alarms(E)])
    end.

has(Id) -> fun(L) -> lists:keymember(Id, 1, L) end.
hasnt(Id) -> fun(L) -> not lists:keymember(Id, 1, L) end.

ask(C, Cmd) ->
    case ctl(C, Cmd, 5000) of
        {ok, R} -> R;
        timeout -> fail("cnode_ctl ~p: no answer", [Cmd])
    end.

%% ---- tests -------------------------------------------------------------------------------------------------

%% alarm_set / alarm_clear / alarms: mirrored into alarm_handler on the --alarm-node, one entry per id.
t_alarms() ->
    {_, E} = sasl_erl("res_a"),
    {_, C} = cnode("res_ca", ["--alarm-node", atom_to_list(E)]),
    step("alarm_set"),
    ok = ask(C, {alarm_set, disk_full, <<"90% used">>}),
    ok = ask(C, {alarm_set, {queue_long, q1}, [{len, 5000}]}),
    Ms = wait_alarms(E, fun(L) -> lists:member({disk_full, <<"90% used">>}, L) andalso
                                     lists:member({{queue_long, q1}, [{len, 5000}]}, L) end, 5000, "alarms set"),
    info("both alarms in alarm_handler after ~b ms", [Ms]),
    [{{queue_long, q1}, [{len, 5000}]}, {disk_full, <<"90% used">>}] = ask(C, alarms),
    step("same again, then another description"),
    ok = ask(C, {alarm_set, disk_full, <<"90% used">>}),
    ok = ask(C, {alarm_set, disk_full, <<"95% used">>}),
    wait_alarms(E, fun(L) -> [D || {disk_full, D} <- L] =:= [<<"95% used">>] end, 5000, "description replaced"),
    step("gen_server form"),
    ok = gen_server:call({cnode_ctl, C}, {alarm_clear, disk_full}),
    ok = gen_server:call({cnode_ctl, C}, {alarm_clear, never_set}),
    wait_alarms(E, hasnt(disk_full), 5000, "disk_full cleared"),
    [{{queue_long, q1}, _}] = gen_server:call({cnode_ctl, C}, alarms),
    true = lists:keymember({queue_long, q1}, 1, alarms(E)).

%% --watch db=127.0.0.1:P: the port closed raises {dependency_down, db} within two intervals; open again, it is
%% cleared after three passing checks (not before the third).
t_watchdog() ->
    {ok, L0} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}, {reuseaddr, true}]),
    {ok, Port} = inet:port(L0),
    {_, E} = sasl_erl("res_w"),
    {H, C} = cnode("res_cw", ["--alarm-node", atom_to_list(E), "--watch-interval", integer_to_list(?IV),
                              "--watch", "db=127.0.0.1:" ++ integer_to_list(Port)]),
    Id = {dependency_down, db},
    timer:sleep(3 * ?IV),
    [] = [A || A = {I, _} <- alarms(E), I =:= Id],
    step("closing the port"),
    T0 = now_ms(),
    ok = gen_tcp:close(L0),
    wait_alarms(E, has(Id), 5000, "dependency_down set"),
    Down = now_ms() - T0,
    info("{dependency_down, db} on ~p ~b ms after the port closed (interval ~b)", [E, Down, ?IV]),
    Down =< 2 * ?IV + 150 orelse fail("set after ~b ms: more than two intervals", [Down]),
    [{Id, Desc}] = [A || A = {I, _} <- ask(C, alarms), I =:= Id],
    info("description: ~p", [Desc]),
    step("opening the port again"),
    {ok, L1} = gen_tcp:listen(Port, [{ip, {127, 0, 0, 1}}, {reuseaddr, true}]),
    T1 = now_ms(),
    wait_alarms(E, hasnt(Id), 5000, "dependency_down cleared"),
    Up = now_ms() - T1,
    info("cleared ~b ms after the port opened (three passing checks at ~b ms)", [Up, ?IV]),
    Up >= 2 * ?IV orelse fail("cleared after ~b ms: fewer than three checks", [Up]),
    Up =< 4 * ?IV + 300 orelse fail("cleared after ~b ms: more than four intervals", [Up]),
    gen_tcp:close(L1),
    [_ | _] = tail(H, 1).

%% The alarm node stops and comes back empty (a new erl with the same name): the C node connects again and sends
%% every alarm it holds, the one set while that node was away included, and not the one cleared meanwhile.
t_reconnect() ->
    {HE, E} = sasl_erl("res_r"),
    {_, C} = cnode("res_cr", ["--alarm-node", atom_to_list(E)]),
    ok = ask(C, {alarm_set, a1, <<"one">>}),
    ok = ask(C, {alarm_set, a2, <<"two">>}),
    wait_alarms(E, fun(L) -> (has(a1))(L) andalso (has(a2))(L) end, 5000, "alarms set"),
    step("stopping the alarm node"),
    signal(HE, "KILL"),
    wait_exit(HE, 5000),
    ok = ask(C, {alarm_set, a3, <<"three">>}),
    ok = ask(C, {alarm_clear, a2}),
    step("the alarm node again"),
    {_, E} = sasl_erl("res_r"),
    Ms = wait_alarms(E, fun(L) -> lists:sort([I || {I, _} <- L, lists:member(I, [a1, a2, a3])]) =:= [a1, a3] end,
                     20000, "alarms sent again"),
    info("alarms back on the restarted ~p after ~b ms: ~p", [E, Ms, alarms(E)]),
    step("a reconnect of a node that kept them: one entry per id"),
    true = net_kernel:disconnect(C) orelse rpc:call(E, erlang, disconnect_node, [C]),
    rpc:call(E, erlang, disconnect_node, [C]),
    timer:sleep(1500),
    wait_alarms(E, fun(L) -> length([x || {a1, _} <- L]) =:= 1 andalso length([x || {a3, _} <- L]) =:= 1 end,
                20000, "one a1 and one a3 after the reconnect").

%% An alarm node whose SASL starts late (as one that just came up and connects before its -eval ran): the calls
%% are tried again until alarm_handler is there.
t_sasl_late() ->
    {_, E} = start_erl("res_l", #{}),
    {H, C} = cnode("res_cl", ["--alarm-node", atom_to_list(E)]),
    ok = ask(C, {alarm_set, early, <<"before SASL">>}),
    interop_lib:wait_line(H, "is SASL started?", 0, 5000) =/= timeout orelse fail("no warning about SASL", []),
    ok = rpc:call(E, application, start, [sasl]),
    Ms = wait_alarms(E, has(early), 10000, "alarm set once SASL runs"),
    info("in alarm_handler ~b ms after SASL started", [Ms]),
    ok = ask(C, {alarm_clear, early}),
    wait_alarms(E, hasnt(early), 5000, "cleared").

%% SIGTERM: the graceful stop clears the C node's alarms on the alarm node before it exits.
t_sigterm() ->
    {_, E} = sasl_erl("res_s"),
    {H, C} = cnode("res_cs", ["--alarm-node", atom_to_list(E), "--drain-delay", "0"]),
    ok = ask(C, {alarm_set, going_away, <<"until SIGTERM">>}),
    wait_alarms(E, has(going_away), 5000, "alarm set"),
    step("SIGTERM"),
    signal(H, "TERM"),
    case wait_exit(H, 15000) of
        {ok, 0} -> ok;
        R -> fail("after SIGTERM: ~p: ~ts", [R, tail(H, 8)])
    end,
    [] = [A || A = {going_away, _} <- alarms(E)],
    info("alarm_handler on ~p after the C node's exit: ~p", [E, alarms(E)]).

%% {standard, 2, 10000} with {reset, 1000}: blows on the third melt, raises {fuse_blown, f} there, answers blown,
%% heals after about a second (and the alarm goes).
t_fuse() ->
    {_, E} = sasl_erl("res_f"),
    {_, C} = cnode("res_cf", ["--alarm-node", atom_to_list(E)]),
    ok = ask(C, {fuse_install, f, {{standard, 2, 10000}, {reset, 1000}}}),
    ok = ask(C, {fuse_ask, f}),
    ok = ask(C, {fuse_melt, f}),
    ok = ask(C, {fuse_melt, f}),
    ok = ask(C, {fuse_ask, f}),
    T0 = now_ms(),
    ok = ask(C, {fuse_melt, f}),
    blown = ask(C, {fuse_ask, f}),
    blown = gen_server:call({cnode_ctl, C}, {fuse_ask, f}),
    wait_alarms(E, has({fuse_blown, f}), 5000, "{fuse_blown, f} set"),
    wait_until(fun() -> ask(C, {fuse_ask, f}) =:= ok end, 3000, "healed") orelse fail("not healed in 3 s", []),
    Healed = now_ms() - T0,
    info("healed ~b ms after the third melt", [Healed]),
    Healed >= 950 orelse fail("healed after ~b ms, before its reset", [Healed]),
    wait_alarms(E, hasnt({fuse_blown, f}), 5000, "{fuse_blown, f} cleared"),
    step("reset and reinstall"),
    [ok = ask(C, {fuse_melt, f}) || _ <- [1, 2, 3]],
    blown = ask(C, {fuse_ask, f}),
    ok = gen_server:call({cnode_ctl, C}, {fuse_reset, f}),
    ok = ask(C, {fuse_ask, f}),
    ok = ask(C, {fuse_install, f, {{fault_injection, 1.0, 5, 1000}, {reset, 100}}}),
    blown = ask(C, {fuse_ask, f}),
    ok = ask(C, {fuse_remove, f}),
    {error, not_found} = ask(C, {fuse_ask, f}).

%% A call through a blown fuse fails at once and sends nothing; calls that fail (noproc, timeout) melt the fuse.
t_fuse_call() ->
    {_, E} = sasl_erl("res_g"),
    {_, C} = cnode("res_cg", []),
    Me = self(),
    Srv = spawn(E, interop_lib:remote_fun(
                     "fun() -> register(res_srv, self()), Me ! registered,"
                     "  (fun L() -> receive {'$gen_call', From, ping} -> gen_server:reply(From, pong), L();"
                     "                      M -> Me ! {srv_got, M}, L() end end)() end", #{'Me' => Me})),
    receive registered -> ok after 5000 -> fail("no server on ~p", [E]) end,
    ok = ask(C, {fuse_install, g, {{standard, 1, 60000}, {reset, 60000}}}),
    {ok, pong} = ask(C, {fuse_call, g, {res_srv, E}, ping, 2000}),
    step("calls that fail melt it: noproc, then a timeout"),
    {error, {exit, noproc}} = ask(C, {fuse_call, g, {nobody, E}, ping, 2000}),
    ok = ask(C, {fuse_ask, g}),
    {error, timeout} = ask(C, {fuse_call, g, {res_srv, E}, silent, 300}),
    receive {srv_got, _} -> ok after 1000 -> fail("the server never got the call that timed out", []) end,
    blown = ask(C, {fuse_ask, g}),
    step("through the blown fuse"),
    T0 = erlang:monotonic_time(microsecond),
    {error, blown} = ask(C, {fuse_call, g, {res_srv, E}, ping, 2000}),
    Us = erlang:monotonic_time(microsecond) - T0,
    info("a call through the blown fuse answered in ~b us (round trip to cnode_ctl included)", [Us]),
    Us < 100000 orelse fail("took ~b us", [Us]),
    receive {srv_got, M} -> fail("the server got ~p through a blown fuse", [M]) after 300 -> ok end,
    {error, not_found} = ask(C, {fuse_call, nofuse, {res_srv, E}, ping, 2000}),
    exit(Srv, kill).

%% What fuse:install/2 refuses, unknown fuses, commands of other shapes.
t_fuse_bad() ->
    {_, C} = cnode("res_cb", []),
    Bad = [{{standard, -1, 10}, {reset, 1}}, {{standard, 1, 10}, {heal, 1}}, {{fault_injection, 1, 1, 1}, {reset, 1}},
           {{fault_injection, 0.0, 1, 1}, {reset, 1}}, {{fault_injection, 1.5, 1, 1}, {reset, 1}},
           {{fault_injection, 0.5, 0, 1}, {reset, 1}}, {standard, 1, 10}, nonsense, {{standard, 1, 1.0}, {reset, 1}}],
    [{error, badarg} = ask(C, {fuse_install, x, B}) || B <- Bad],
    {error, not_found} = ask(C, {fuse_ask, x}),
    ok = ask(C, {fuse_melt, x}), %% fuse:melt/1 is ok for any name
    {error, not_found} = ask(C, {fuse_reset, x}),
    {error, unknown_command} = ask(C, {fuse_ask, "x"}),
    {error, unknown_command} = ask(C, {fuse_install, x}),
    {error, unknown_command} = ask(C, {alarm_set, x}),
    {error, unknown_command} = ask(C, fuse_bogus),
    [] = ask(C, alarms).

%% CNODE_WATCH (two watches, space-separated), CNODE_WATCH_INTERVAL and CNODE_ALARM_NODE as the flags; bad values
%% exit 2 naming the variable.
t_env() ->
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, Port} = inet:port(L),
    ok = gen_tcp:close(L),
    {_, E} = sasl_erl("res_v"),
    Name = "res_cv@127.0.0.1",
    {Exe, Args} = interop_lib:cnode_cmd(["--name", Name, "--cookie", cfg(cookie), "--epmd-port", cfg('epmd-port')]),
    Env = [{"CNODE_WATCH", "db=127.0.0.1:" ++ integer_to_list(Port) ++ " cache=[::1]:" ++ integer_to_list(Port)},
           {"CNODE_WATCH_INTERVAL", "200"}, {"CNODE_ALARM_NODE", atom_to_list(E)}],
    H = interop_lib:start_ext("cnode_env", Exe, Args, interop_lib:base_env() ++ Env),
    interop_lib:wait_ready(H, Name, 0, 15000),
    wait_alarms(E, fun(A) -> (has({dependency_down, db}))(A) andalso (has({dependency_down, cache}))(A) end, 5000,
                "both watches down"),
    [begin
         B = interop_lib:start_ext("cnode_bad", Exe, Args, interop_lib:base_env() ++ [{K, V}]),
         case wait_exit(B, 5000) of
             {ok, 2} -> ok;
             R -> fail("~ts=~ts: ~p, want exit 2", [K, V, R])
         end,
         interop_lib:wait_line(B, K ++ "=", 0, 1000) =/= timeout orelse fail("no line naming ~ts: ~ts", [K, tail(B, 3)])
     end || {K, V} <- [{"CNODE_WATCH", "db=127.0.0.1"}, {"CNODE_WATCH", "=h:1"}, {"CNODE_WATCH", "db=h:70000"},
                       {"CNODE_WATCH_INTERVAL", "0"}, {"CNODE_ALARM_NODE", "nohost"}]],
    ok.
