#!/usr/bin/env escript
%%! -hidden -connect_all false
%% Live interop of issue 9 without Horde: the C node's Horde.Registry member (horde_compat/registry.c, joined with
%% `cnode --horde-registry MyApp.Registry`) against `elixir` nodes running interop/horde_standin.ex, our own
%% spec-following Horde.Registry stand-in (horde-wire.md §1-§4; its CRDT is interop/crdt_peer.erl). Both sides
%% run members: :auto and sync every 300 ms (Horde's default). Each test starts its own C node and stand-in(s);
%% this node (rs@127.0.0.1) is hidden, so it is nobody's member: it drives the stand-ins with erpc and the C node
%% through cnode_ctl. Run by interop/run.sh with --cnode BIN --repo DIR --build DIR --epmd-port P --free-port P2
%% --tmp DIR --pidfile F. Output: `ok name` / `FAIL name: reason`, then `registry_suite: N passed, N failed`.
-mode(compile).

-import(interop_lib, [cfg/1, info/2, step/1, fail/2, now_ms/0, start_cnode/3, start_elixir/3, wait_line/4,
                      signal/2, wait_exit/2, ctl/3, wait_until/3, remote_fun/2, tail/2]).

-define(REG, 'Elixir.MyApp.Registry').
-define(SI, 'Elixir.HordeStandin.Registry').
-define(PROBE, 'Elixir.HordeStandin.Probe').
-define(SYNC_MS, 300).
%% "within 2 sync intervals"
-define(TWO_SYNCS, 2 * ?SYNC_MS).
-define(T, 5000).

tests() ->
    [{c_name_seen_in_elixir, 20, fun t_c_name_seen/0},
     {via_call_and_send, 15, fun t_via/0},
     {elixir_name_seen_in_c, 15, fun t_elixir_name_seen/0},
     {unregister_from_c, 15, fun t_unregister_from_c/0},
     {c_process_death, 15, fun t_c_process_death/0},
     {conflict, 30, fun t_conflict/0},
     {members_agree, 30, fun t_members/0},
     {crdts_converge, 20, fun t_converge/0},
     {kill_cnode_drops_names, 20, fun t_kill_cnode/0}].

main(Args) ->
    Tmp = arg_value("--tmp", Args),
    Here = filename:dirname(escript:script_name()),
    Compiled = [compile:file(filename:join(Here, F), [{outdir, Tmp}, return_errors])
                || Tmp =/= undefined, F <- ["interop_lib.erl", "crdt_peer.erl"]],
    case Tmp =/= undefined andalso lists:all(fun({ok, _}) -> true; (_) -> false end, Compiled) of
        true -> true = code:add_patha(Tmp);
        false -> setup_failed("cannot compile the harness into ~p: ~p", [Tmp, Compiled])
    end,
    %% The stand-in's beams go next to crdt_peer.beam; every elixir node gets -pa Tmp.
    Ex = filename:join(Here, "horde_standin.ex"),
    Out = os:cmd(lists:flatten(io_lib:format("elixirc -pa '~ts' -o '~ts' '~ts' 2>&1; echo \"rc=$?\"",
                                             [Tmp, Tmp, Ex]))),
    case lists:suffix("rc=0\n", Out) of
        true -> ok;
        false -> setup_failed("elixirc ~ts failed: ~ts", [Ex, Out])
    end,
    interop_lib:main(Args, "registry_suite", tests(),
                     #{node => 'rs@127.0.0.1', budget_ms => 85000, fail_logs => ["cnode", "elixir"]}).

setup_failed(F, A) ->
    io:format("FAIL setup: " ++ F ++ "~nregistry_suite: 0 passed, 1 failed~n", A),
    halt(1).

arg_value(_, []) -> undefined;
arg_value(K, [K, V | _]) -> V;
arg_value(K, [_ | T]) -> arg_value(K, T).

%% ---------------------------------------------------------------------------------------------------------
%% the nodes

%% A stand-in node Short@127.0.0.1 (members: auto, sync every 300 ms), connected to this (hidden) node.
standin(Short) ->
    Code = io_lib:format("HordeStandin.serve(name: MyApp.Registry, members: :auto, sync_interval: ~b)", [?SYNC_MS]),
    H = start_elixir(Short, ["-pa", cfg(tmp), "-e", lists:flatten(Code)], []),
    case wait_line(H, "STANDIN_READY", 0, 20000) of
        {ok, _} -> ok;
        R -> fail("stand-in ~ts did not start (~p): ~ts", [Short, R, tail(H, 8)])
    end,
    E = list_to_atom(Short ++ "@127.0.0.1"),
    true = net_kernel:connect_node(E),
    {H, E}.

%% A C node Short@127.0.0.1 with --horde-registry MyApp.Registry; returns {Handle, Node} once it joined.
cnode(Short) ->
    Name = Short ++ "@127.0.0.1",
    {H, _} = start_cnode("cnode_" ++ Short, Name, ["--horde-registry", "MyApp.Registry"]),
    case wait_line(H, "joined Horde.Registry Elixir.MyApp.Registry", 0, 5000) of
        {ok, _} -> ok;
        R -> fail("~ts did not join the registry (~p): ~ts", [Name, R, tail(H, 8)])
    end,
    {H, list_to_atom(Name)}.

%% The stand-in E connects to the C node C (a visible connection: both make each other a member).
connect(E, C) ->
    true =:= rpc(E, net_kernel, connect_node, [C]) orelse fail("~ts could not connect to ~ts", [E, C]).

rpc(N, M, F, A) ->
    try erpc:call(N, M, F, A, ?T)
    catch
        error:{erpc, timeout} -> fail("~ts: ~ts:~ts/~b did not return within ~b ms", [N, M, F, length(A), ?T]);
        Class:Why -> fail("~ts: ~ts:~ts/~b raised ~p:~0tp", [N, M, F, length(A), Class, Why])
    end.

%% The stand-in's registry API on E (registry MyApp.Registry).
si(E, F, A) -> rpc(E, ?SI, F, [?REG | A]).
lookup_e(E, Key) -> si(E, lookup, [Key]).
members_e(E) -> lists:sort(si(E, members, [])).
%% The stand-in's local table: [{Key, Member, {Pid, Value}}].
table_e(E) -> si(E, registrations, []).
in_table_e(E, Key) -> lists:keymember(Key, 1, table_e(E)).

c(C, Req) ->
    case ctl(C, Req, ?T) of
        {ok, R} -> R;
        timeout -> fail("cnode_ctl of ~ts did not answer ~0tp within ~b ms", [C, Req, ?T])
    end.
lookup_c(C, Key) -> c(C, {horde_lookup, ?REG, Key}).
members_c(C) -> lists:sort(c(C, {horde_members, ?REG})).
register_c(C, Key, Value) ->
    case c(C, {horde_register, ?REG, Key, Value}) of
        {ok, P} when is_pid(P), node(P) =:= C -> P;
        Other -> fail("horde_register ~0tp on ~ts answered ~0tp", [Key, C, Other])
    end.

%% A probe process on E registered under Key (HordeStandin.Probe: traps exits, forwards what it gets to us).
probe(E, Key, Value) ->
    {P, R} = rpc(E, ?PROBE, start, [?REG, Key, Value, self()]),
    {P, R}.

members_of(Ns) -> lists:sort([{?REG, N} || N <- Ns]).

%% Waits (polling every 10 ms) until F() is true; the time it took in ms.
wait(What, Ms, F) ->
    T0 = now_ms(),
    case wait_until(F, Ms, What) of
        true -> now_ms() - T0;
        false -> fail("~ts: not within ~b ms", [What, Ms])
    end.

%% As wait/3, but it must happen within the limit of "2 sync intervals" (600 ms); failing that, it waits up
%% to 5 s more to tell "slow" from "never".
wait_syncs(What, F) ->
    T0 = now_ms(),
    case wait_until(F, 5000, What) of
        true ->
            Ms = now_ms() - T0,
            Ms =< ?TWO_SYNCS orelse fail("~ts: took ~b ms, more than 2 sync intervals (~b ms)", [What, Ms, ?TWO_SYNCS]),
            Ms;
        false -> fail("~ts: not within 5 s", [What])
    end.

%% The stand-in's supervisor children: a crash of its CRDT (a malformed message from the C node) or registry
%% restarts them all (one_for_all), which this notices.
procs(E) -> si(E, processes, []).
intact(E, Procs0) ->
    case try procs(E) catch C:R -> {C, R} end of
        Procs0 -> ok;
        Other -> fail("the stand-in on ~ts restarted or died (children ~0tp, were ~0tp); see its log", [E, Other, Procs0])
    end.

recv_probe(P, Ms) ->
    receive {probe, P, M} -> M after Ms -> timeout end.

%% Two nodes connected and each showing both as members.
joined(E, C) ->
    T0 = now_ms(),
    connect(E, C),
    Want = members_of([E, C]),
    wait("members on both sides become [E, C]", 5000, fun() -> members_e(E) =:= Want andalso members_c(C) =:= Want end),
    now_ms() - T0.

%% ---------------------------------------------------------------------------------------------------------
%% tests

%% The C node's echo, registered under {echo, C} when it joined, is found by the stand-in's lookup (which checks
%% the C pid with erpc Process.alive? on the C node); a later C registration shows within 2 sync intervals.
t_c_name_seen() ->
    {_, E} = standin("rs_e1"),
    Procs = procs(E),
    {_, C} = cnode("rs_c1"),
    T0 = now_ms(),
    connect(E, C),
    step("the C echo shows in the stand-in"),
    Checks0 = maps:get(remote_alive_checks, si(E, stats, [])),
    Ms1 = wait_syncs("lookup of {echo, C} on the stand-in",
                     fun() -> case lookup_e(E, {echo, C}) of [{P, nil}] -> node(P) =:= C; _ -> false end end),
    Ms1b = now_ms() - T0,
    [{Echo, nil}] = lookup_e(E, {echo, C}),
    Echo ! {self(), hello},
    receive hello -> ok after ?T -> fail("the registered pid ~p does not echo", [Echo]) end,
    Checks1 = maps:get(remote_alive_checks, si(E, stats, [])),
    Checks1 > Checks0 orelse fail("the stand-in's lookups made no erpc aliveness check", []),
    info("{echo, C} found ~b ms after the connect (~b ms polling)", [Ms1b, Ms1]),
    step("a new C registration, steady state"),
    P1 = register_c(C, {c_key, 1}, {v, 1}),
    Ms2 = wait_syncs("{c_key, 1} seen on the stand-in",
                     fun() -> lookup_e(E, {c_key, 1}) =:= [{P1, {v, 1}}] end),
    info("a C registration was found by the stand-in's lookup after ~b ms", [Ms2]),
    [{{c_key, 1}, {?REG, C}, {P1, {v, 1}}}] = [T || T = {{c_key, 1}, _, _} <- table_e(E)],
    step("erpc Process.alive? answered by the C node"),
    true = rpc(E, erpc, call, [C, 'Elixir.Process', 'alive?', [P1], ?T]),
    P2 = register_c(C, {c_key, 2}, x),
    wait("{c_key, 2} seen on the stand-in", 5000, fun() -> lookup_e(E, {c_key, 2}) =:= [{P2, x}] end),
    exit(P2, kill),
    wait("erpc Process.alive? of a killed C pid is false", 3000,
         fun() -> rpc(E, erpc, call, [C, 'Elixir.Process', 'alive?', [P2], ?T]) =:= false end),
    %% until the C registry's delete arrives (up to a sync interval), the key is still in the stand-in's table:
    %% only the erpc answer keeps the dead pid out of the lookup
    case {in_table_e(E, {c_key, 2}), lookup_e(E, {c_key, 2})} of
        {true, []} -> info("a dead C pid still in the stand-in's table was filtered by the erpc check", []);
        {false, []} -> info("the key of the killed C pid had already left the table", []);
        {_, L} -> fail("lookup of a killed C process's key gave ~0tp", [L])
    end,
    Checks2 = maps:get(remote_alive_checks, si(E, stats, [])),
    info("stand-in lookups made ~b erpc Process.alive? calls to the C node", [Checks2]),
    intact(E, Procs).

%% GenServer.call and send through {via, HordeStandin.Registry, {MyApp.Registry, {echo, C}}} reach the C echo.
t_via() ->
    {_, E} = standin("rs_e2"),
    Procs = procs(E),
    {_, C} = cnode("rs_c2"),
    joined(E, C),
    wait("{echo, C} on the stand-in", 5000, fun() -> lookup_e(E, {echo, C}) =/= [] end),
    Via = {via, ?SI, {?REG, {echo, C}}},
    step("GenServer.call through the via tuple"),
    {hello, 1} = rpc(E, 'Elixir.GenServer', call, [Via, {hello, 1}]),
    {hello, 2} = rpc(E, 'Elixir.GenServer', call, [Via, {hello, 2}, 1000]),
    step("GenServer.call with infinity timeout"),
    {hello, 3} = rpc(E, gen_server, call, [Via, {hello, 3}, infinity]),
    step("send through the via callback"),
    Send = remote_fun("fun() -> M:send({R, K}, {self(), via_ping}), receive X -> X after 3000 -> timeout end end",
                      #{'M' => ?SI, 'R' => ?REG, 'K' => {echo, C}}),
    via_ping = rpc(E, erlang, apply, [Send, []]),
    step("whereis_name and a missing name"),
    [{Echo, nil}] = lookup_e(E, {echo, C}),
    Echo = rpc(E, ?SI, whereis_name, [{?REG, {echo, C}}]),
    Echo = rpc(E, 'Elixir.GenServer', whereis, [Via]),
    Missing = remote_fun("fun() -> try M:send({R, nope}, x) catch error:badarg -> badarg end end",
                         #{'M' => ?SI, 'R' => ?REG}),
    badarg = rpc(E, erlang, apply, [Missing, []]),
    step("a registration by a C ctl-started echo, called through via"),
    P = register_c(C, {svc, C}, 7),
    wait("{svc, C} on the stand-in", 5000, fun() -> lookup_e(E, {svc, C}) =:= [{P, 7}] end),
    {ping, 4} = rpc(E, 'Elixir.GenServer', call, [{via, ?SI, {?REG, {svc, C}}}, {ping, 4}]),
    step("register_name in Elixir takes over {svc, C} (§4.2: the via path skips the lookup and always wins)"),
    MRef = erlang:monitor(process, P),
    {ok, Agent} = rpc(E, 'Elixir.Agent', start, [remote_fun("fun() -> 0 end", #{})]),
    yes = rpc(E, ?SI, register_name, [{?REG, {svc, C}}, Agent]),
    Want = {name_conflict, {{svc, C}, 7}, ?REG, Agent},
    receive
        {'DOWN', MRef, process, P, Want} -> ok;
        {'DOWN', MRef, process, P, Why} -> fail("the replaced C process died of ~0tp, want ~0tp", [Why, Want])
    after ?T -> fail("the replaced C process is still alive", [])
    end,
    wait("both sides show the Agent under {svc, C}", 5000,
         fun() -> lookup_e(E, {svc, C}) =:= [{Agent, nil}] andalso lookup_c(C, {svc, C}) =:= [{Agent, nil}] end),
    timer:sleep(2 * ?SYNC_MS),
    [{Agent, nil}] = lookup_c(C, {svc, C}),
    [{Agent, nil}] = lookup_e(E, {svc, C}),
    intact(E, Procs).

%% Names registered in Elixir (register/3 and a via-named Agent) are found by the C node's horde_lookup; a taken
%% name is refused on both sides; the Elixir process's death removes its name from the C node.
t_elixir_name_seen() ->
    {_, E} = standin("rs_e3"),
    Procs = procs(E),
    {_, C} = cnode("rs_c3"),
    joined(E, C),
    step("register/3 on the stand-in"),
    {P1, R1} = probe(E, {ex, 1}, v1),
    {ok, Impl} = R1,
    true = is_pid(Impl) andalso node(Impl) =:= E,
    Ms = wait_syncs("{ex, 1} seen by the C node's horde_lookup", fun() -> lookup_c(C, {ex, 1}) =:= [{P1, v1}] end),
    info("an Elixir registration was found by the C node's lookup after ~b ms", [Ms]),
    step("a via-named Agent"),
    Start = remote_fun("fun() -> 'Elixir.Agent':start(fun() -> 0 end, [{name, {via, M, {R, agent}}}]) end",
                       #{'M' => ?SI, 'R' => ?REG}),
    {ok, Agent} = rpc(E, erlang, apply, [Start, []]),
    wait_syncs("the via-named Agent seen by the C node", fun() -> lookup_c(C, agent) =:= [{Agent, nil}] end),
    step("taken names are refused"),
    case c(C, {horde_register, ?REG, {ex, 1}, other}) of
        {error, {already_registered, P1}} -> ok;
        Other -> fail("C horde_register of a name held in Elixir answered ~0tp", [Other])
    end,
    [{Echo, nil}] = lookup_e(E, {echo, C}),
    {P2, R2} = probe(E, {echo, C}, nil),
    R2 =:= {error, {already_registered, Echo}} orelse fail("stand-in register of {echo, C} answered ~0tp", [R2]),
    P2 ! {probe_exit, normal},
    step("the Elixir process dies"),
    P1 ! {probe_exit, bye},
    wait_syncs("{ex, 1} gone from the C node", fun() -> lookup_c(C, {ex, 1}) =:= [] end),
    false = in_table_e(E, {ex, 1}),
    step("unregister on the stand-in"),
    {P3, {ok, _}} = probe(E, {ex, 3}, v3),
    wait_syncs("{ex, 3} on the C node", fun() -> lookup_c(C, {ex, 3}) =:= [{P3, v3}] end),
    P3 ! {probe_do, ?SI, unregister, [?REG, {ex, 3}]},
    {done, ok} = recv_probe(P3, ?T),
    wait_syncs("{ex, 3} unregistered on the C node", fun() -> lookup_c(C, {ex, 3}) =:= [] end),
    intact(E, Procs).

%% horde_unregister on the C node removes the name from the stand-in; the name can then be taken in Elixir.
t_unregister_from_c() ->
    {_, E} = standin("rs_e4"),
    Procs = procs(E),
    {_, C} = cnode("rs_c4"),
    joined(E, C),
    P = register_c(C, {u, 1}, uv),
    wait("{u, 1} on the stand-in", 5000, fun() -> lookup_e(E, {u, 1}) =:= [{P, uv}] end),
    step("horde_unregister on the C node"),
    ok = c(C, {horde_unregister, ?REG, {u, 1}}),
    Ms = wait_syncs("{u, 1} gone from the stand-in's table", fun() -> not in_table_e(E, {u, 1}) end),
    [] = lookup_e(E, {u, 1}),
    info("a C unregister reached the stand-in after ~b ms", [Ms]),
    Echo = P,
    Echo ! {self(), still_here},
    receive still_here -> ok after ?T -> fail("the unregistered C process is gone", []) end,
    step("the freed name taken in Elixir"),
    {P2, {ok, _}} = probe(E, {u, 1}, ev),
    wait_syncs("{u, 1} held by the Elixir process on the C node", fun() -> lookup_c(C, {u, 1}) =:= [{P2, ev}] end),
    intact(E, Procs).

%% A C process's death removes its key from the stand-in (the C registry deletes it from the CRDT: the key leaves
%% the stand-in's table, not just its lookup).
t_c_process_death() ->
    {_, E} = standin("rs_e5"),
    Procs = procs(E),
    {_, C} = cnode("rs_c5"),
    joined(E, C),
    P1 = register_c(C, {d, 1}, 1),
    P2 = register_c(C, {d, 2}, 2),
    wait("{d, 1} and {d, 2} in the stand-in's table", 5000,
         fun() -> in_table_e(E, {d, 1}) andalso in_table_e(E, {d, 2}) end),
    step("kill a C process"),
    exit(P1, kill),
    Ms = wait_syncs("{d, 1} gone from the stand-in's table", fun() -> not in_table_e(E, {d, 1}) end),
    [] = lookup_c(C, {d, 1}),
    [{P2, 2}] = lookup_e(E, {d, 2}),
    info("a killed C process's key left the stand-in's table after ~b ms", [Ms]),
    step("a C process exiting with another reason, sent from the Elixir node"),
    true = rpc(E, erlang, exit, [P2, shutdown]),
    wait_syncs("{d, 2} gone from the stand-in's table", fun() -> not in_table_e(E, {d, 2}) end),
    [] = lookup_c(C, {d, 2}),
    intact(E, Procs).

%% The same keys registered on both sides while not connected; after the connect both sides agree on the winner
%% the LWW rule picks (greater writer-side Ts, read from the stand-in's raw CRDT entries) and the loser gets
%% {name_conflict, {Key, Value}, MyApp.Registry, WinnerPid}: from the C registry (a C loser dies with it,
%% seen through a monitor) or from the stand-in (its probe traps exits).
t_conflict() ->
    {_, E} = standin("rs_e6"),
    Procs = procs(E),
    {_, C} = cnode("rs_c6"),
    %% Ts is node-local uptime (§2.2): the stand-in's VM is older than the C node's CRDT by about d (its boot
    %% plus the C node's start). k1, written on both at once, should go to Elixir; k2, written on C over 2 s
    %% after Elixir, should go to C. Whatever happens, the checks below hold the outcome to the LWW rule.
    step("k1 on both sides, unconnected"),
    C1 = register_c(C, k1, c1),
    {E1, {ok, Impl}} = probe(E, k1, e1),
    step("k2 on both sides, unconnected, C 2 s later"),
    {E2, {ok, Impl}} = probe(E, k2, e2),
    timer:sleep(2000),
    C2 = register_c(C, k2, c2),
    [] = rpc(E, erlang, nodes, []),
    M1 = erlang:monitor(process, C1),
    M2 = erlang:monitor(process, C2),
    step("connect"),
    joined(E, C),
    Outcomes = [conflict_outcome(E, C, Impl, K, {CP, CV, CM}, {EP, EV})
                || {K, CP, CV, CM, EP, EV} <- [{k1, C1, c1, M1, E1, e1}, {k2, C2, c2, M2, E2, e2}]],
    step("stable for 3 sync intervals"),
    timer:sleep(3 * ?SYNC_MS),
    [begin
         [{W, V}] = lookup_e(E, K),
         [{W, V}] = lookup_c(C, K)
     end || {K, W, V} <- Outcomes],
    Dirs = lists:usort([case node(W) of C -> c_won; E -> elixir_won end || {_, W, _} <- Outcomes]),
    info("conflict outcomes: ~0tp", [[{K, node(W)} || {K, W, _} <- Outcomes]]),
    Dirs =:= [c_won, elixir_won] orelse info("only ~0tp happened (clock offsets); both were expected", [Dirs]),
    intact(E, Procs).

conflict_outcome(E, C, Impl, K, {CP, CV, CM}, {EP, EV}) ->
    wait(io_lib:format("both sides agree on one holder of ~0tp", [K]), 5000,
         fun() ->
                 case {lookup_e(E, K), lookup_c(C, K)} of
                     {[{W, _}], [{W, _}]} -> true;
                     _ -> false
                 end
         end),
    Raw = si(E, raw, [{key, K}]),
    is_map(Raw) andalso map_size(Raw) =:= 2
        orelse fail("the stand-in's CRDT should hold both entries of ~0tp (the loser's stays): ~0tp", [K, Raw]),
    [{_, {{_, Winner, WinVal}, _}} | _] = lists:reverse(lists:sort([{Ts, E0} || E0 = {{_, _, _}, Ts} <- maps:keys(Raw)])),
    %% the LWW winner is what both lookups show
    [{Winner, WinVal}] = lookup_e(E, K),
    [{Winner, WinVal}] = lookup_c(C, K),
    case Winner of
        EP ->
            %% the C process lost: the C registry sends it the exit; it does not trap exits and dies of it
            Want = {name_conflict, {K, CV}, ?REG, EP},
            receive
                {'DOWN', CM, process, CP, Want} -> ok;
                {'DOWN', CM, process, CP, Why} -> fail("the losing C process of ~0tp died of ~0tp, want ~0tp", [K, Why, Want])
            after ?T -> fail("the losing C process of ~0tp is still alive ~b ms after the agreement", [K, ?T])
            end,
            timeout = recv_probe(EP, 0);
        CP ->
            %% the Elixir process lost: the stand-in's registry (linked to it) sends it the exit
            Want = {'EXIT', Impl, {name_conflict, {K, EV}, ?REG, CP}},
            case recv_probe(EP, ?T) of
                Want -> ok;
                Other -> fail("the losing Elixir process of ~0tp got ~0tp, want ~0tp", [K, Other, Want])
            end,
            receive {'DOWN', CM, process, CP, Why} -> fail("the winning C process of ~0tp died: ~0tp", [K, Why])
            after 0 -> ok
            end;
        _ -> fail("~0tp: the winner ~p is neither side's process", [K, Winner])
    end,
    {K, Winner, WinVal}.

%% members: :auto on both sides gives the same member list: the C node's horde_members and the stand-in's
%% members call agree, also with a third node that connects to the stand-in only (the mesh is completed by
%% `global` / the C node, pitfall 21), and after that node goes.
t_members() ->
    {_, E} = standin("rs_e7"),
    Procs = procs(E),
    {_, C} = cnode("rs_c7"),
    Ms = joined(E, C),
    info("members agreed ~b ms after the connect", [Ms]),
    step("the members call of the C registry process, from Elixir"),
    Want = members_of([E, C]),
    Want = lists:sort(rpc(E, gen_server, call, [{?REG, C}, members])),
    step("a second stand-in joins through the first"),
    {H2, E2} = standin("rs_e8"),
    true = rpc(E2, net_kernel, connect_node, [E]),
    Want3 = members_of([E, E2, C]),
    Ms3 = wait("three members on all three nodes", 10000,
               fun() -> members_e(E) =:= Want3 andalso members_e(E2) =:= Want3 andalso members_c(C) =:= Want3 end),
    info("three members agreed ~b ms after the second stand-in connected", [Ms3]),
    %% pitfall 21: the next node-list change on the second stand-in would drop the C member unless they connected
    wait("the second stand-in connected to the C node (full mesh)", 5000,
         fun() -> lists:member(C, rpc(E2, erlang, nodes, [])) end),
    timer:sleep(2 * ?SYNC_MS),
    members_e(E) =:= Want3 andalso members_e(E2) =:= Want3 andalso members_c(C) =:= Want3
        orelse fail("the three members did not stay: ~0tp / ~0tp / ~0tp", [members_e(E), members_e(E2), members_c(C)]),
    wait("{echo, C} seen by the second stand-in", 5000, fun() -> lookup_e(E2, {echo, C}) =/= [] end),
    {P, {ok, _}} = probe(E2, {e2, 1}, x),
    wait("{e2, 1} seen by the C node", 5000, fun() -> lookup_c(C, {e2, 1}) =:= [{P, x}] end),
    step("the second stand-in goes"),
    signal(H2, "KILL"),
    {ok, _} = wait_exit(H2, 5000),
    Want2 = members_of([E, C]),
    wait("two members again on both", 5000, fun() -> members_e(E) =:= Want2 andalso members_c(C) =:= Want2 end),
    wait("{e2, 1} dropped by the C node", 5000, fun() -> lookup_c(C, {e2, 1}) =:= [] end),
    intact(E, Procs).

%% Below the registry: after registrations, a death and an unregister on both sides, the C registry's CRDT and
%% the stand-in's hold the same LWW read and the same Merkle root (raw entries agree: MapSet shape, Ts, dots),
%% and idle sync rounds then carry no keys either way.
t_converge() ->
    {_, E} = standin("rs_e10"),
    Procs = procs(E),
    {_, C} = cnode("rs_c10"),
    joined(E, C),
    Crdt = 'Elixir.MyApp.Registry.Crdt',
    %% values of many term types: the Merkle hashes cover them (phash2 on both sides, §6)
    Vals = [#{a => <<"bin">>, l => [1.5, -3, "str"]}, {1 bsl 70, -(1 bsl 64), 0.0}, <<5:3>>, [a | b], -134217729],
    CPs = [register_c(C, {cc, I}, V) || {I, V} <- lists:zip(lists:seq(1, 5), Vals)],
    EPs = [element(1, probe(E, {ec, I}, V)) || {I, V} <- lists:zip(lists:seq(1, 5), lists:reverse(Vals))],
    exit(hd(CPs), kill),
    hd(EPs) ! {probe_exit, bye},
    lists:last(EPs) ! {probe_do, ?SI, unregister, [?REG, {ec, 5}]},
    {done, ok} = recv_probe(lists:last(EPs), ?T),
    CCall = fun(Req) -> gen_server:call({Crdt, C}, Req, ?T) end,
    ECall = fun(Req) -> rpc(E, crdt_peer, call, [Crdt, Req, ?T]) end,
    step("the two CRDTs converge"),
    Same = fun() -> CCall(read) =:= ECall(read) andalso CCall(root_hash) =:= ECall(root) end,
    Ms = wait("the same read and Merkle root on both sides", 5000, Same),
    Read = ECall(read),
    %% 2 members, {echo, C}, 4 C keys and 3 stand-in keys
    map_size(Read) =:= 10 orelse fail("the CRDT read has ~b keys, want 10: ~0tp", [map_size(Read), maps:keys(Read)]),
    info("converged ~b ms after the last change; root ~w", [Ms, ECall(root)]),
    step("idle rounds carry no keys"),
    #{keys_sent := K0} = CCall(stats),
    S0 = ECall(stats),
    timer:sleep(4 * ?SYNC_MS),
    #{keys_sent := K1, bad_messages := Bad} = CCall(stats),
    S1 = ECall(stats),
    Bad =:= 0 orelse fail("the C CRDT counted ~b malformed messages", [Bad]),
    K1 =:= K0 orelse fail("the C CRDT sent ~b keys while idle", [K1 - K0]),
    maps:get(deltas_in, S1, 0) =:= maps:get(deltas_in, S0, 0)
        orelse fail("the stand-in's CRDT received deltas while idle: ~0tp -> ~0tp", [S0, S1]),
    maps:get(syncs, S1) > maps:get(syncs, S0) orelse fail("the stand-in started no sync rounds while idle", []),
    maps:get(diffs_in, S1, 0) > maps:get(diffs_in, S0, 0) orelse fail("no sync rounds from the C node while idle", []),
    true = Same(),
    intact(E, Procs).

%% kill -9 of the C node: the stand-in's nodedown removes the C member and with it every C registration.
t_kill_cnode() ->
    {_, E} = standin("rs_e9"),
    Procs = procs(E),
    {H, C} = cnode("rs_c9"),
    joined(E, C),
    register_c(C, {k, 1}, 1),
    register_c(C, {k, 2}, 2),
    CKeys = fun() -> [K || {K, {_, N}, _} <- table_e(E), N =:= C] end,
    wait("3 C registrations in the stand-in's table", 5000, fun() -> length(CKeys()) =:= 3 end),
    step("kill -9 the C node"),
    T0 = now_ms(),
    signal(H, "KILL"),
    {ok, _} = wait_exit(H, 5000),
    wait("the C member gone from the stand-in", 5000, fun() -> members_e(E) =:= members_of([E]) end),
    wait("the C registrations gone from the stand-in's table", 5000, fun() -> CKeys() =:= [] end),
    [] = lookup_e(E, {echo, C}),
    info("the C node's names were dropped ~b ms after kill -9", [now_ms() - T0]),
    intact(E, Procs).
