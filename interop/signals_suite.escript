#!/usr/bin/env escript
%%! -connect_all false
%% Interop tests of issue 3, "processes across the wire", its signals: links, unlinks, exit signals and
%% monitors between build/cnode and real OTP nodes, both ways and racing (calls, rpc, spawn, aliases, big
%% messages and long names are proc_suite.escript's). Run by interop/run.sh after suite.escript with
%% --cnode BIN --repo DIR --build DIR --epmd-port P --free-port P2 --tmp DIR --pidfile F [test...] and
%% ERL_EPMD_PORT=P; the harness is interop/interop_lib.erl, compiled into --tmp at startup. This node is
%% sig@127.0.0.1; the shared cnode is sigcnode@127.0.0.1. The tests drive *puppets* (interop_lib's puppet/1):
%% C processes that run {'$puppet', Cmd} and forward every other message to their owner as {puppet, P, Msg}.
%% Output: `ok name` / `FAIL name: reason`, then `signals_suite: N passed, N failed`.
-mode(compile).
-export([main/1]).

-import(interop_lib, [info/2, step/1, fail/2, now_ms/0, main_cnode/0, start_cnode/3, signal/2, ctl/3,
                      flush_all/0, wait_until/3, puppet/1, cmd/2, pmsg/2, ping/1, quiet/2, pmonitor/2,
                      expect_exit/3, expect_down/4]).

-define(CN_NAME, "sigcnode@127.0.0.1").
-define(CN, 'sigcnode@127.0.0.1').
-define(T, 5000).                                       % how long a test waits for an expected message

tests() ->
    %% {name, timeout in seconds, fun}
    [{link_beam_to_c, 15, fun t_link_beam_to_c/0},
     {link_c_to_beam, 15, fun t_link_c_to_beam/0},
     {unlink_races, 30, fun t_unlink_races/0},
     {monitors, 25, fun t_monitors/0}].

main(Args) ->
    Tmp = arg_value("--tmp", Args),
    Lib = filename:join(filename:dirname(escript:script_name()), "interop_lib.erl"),
    case Tmp =/= undefined andalso compile:file(Lib, [{outdir, Tmp}, return_errors]) of
        {ok, _} -> true = code:add_patha(Tmp);
        Err -> io:format("FAIL setup: cannot compile ~ts into ~p: ~p~nsignals_suite: 0 passed, 1 failed~n",
                         [Lib, Tmp, Err]),
               halt(1)
    end,
    interop_lib:main(Args, "signals_suite", tests(),
                     #{node => 'sig@127.0.0.1', budget_ms => 85000, shared_cnode => ?CN_NAME,
                       shared_cnode_proc => "cnode_sig", fail_logs => ["cnode"]}).

arg_value(_, []) -> undefined;
arg_value(K, [K, V | _]) -> V;
arg_value(K, [_ | T]) -> arg_value(K, T).

%% ---------------------------------------------------------------------------------------------------------
%% puppets (interop_lib)

puppet() -> puppet(?CN).

%% A BEAM process that exits with R on {die, R}.
victim() -> spawn(fun() -> receive {die, R} -> exit(R) end end).

%% Waits until BEAM process B's link set contains / lacks Pid (links from C take a wire trip).
await_link(B, Pid, Want) ->
    F = fun() -> case erlang:process_info(B, links) of
                     {links, L} -> lists:member(Pid, L) =:= Want;
                     undefined -> false
                 end end,
    wait_until(F, 3000, "link") orelse
        fail("~p's links ~ts ~p after 3 s: ~p", [B, case Want of true -> "do not include"; false -> "still include" end,
                                                 Pid, erlang:process_info(B, links)]).

%% ---------------------------------------------------------------------------------------------------------
%% link_beam_to_c

t_link_beam_to_c() ->
    main_cnode(),
    process_flag(trap_exit, true),
    step("trapping BEAM process linked to a puppet that exits with {shutdown, x}"),
    P = puppet(),
    link(P),
    cmd(P, {exit, {shutdown, x}}),                        % after the link: same sender, same receiver
    expect_exit(P, {shutdown, x}, "puppet exit {shutdown, x}"),
    {links, L} = process_info(self(), links),
    lists:member(P, L) andalso fail("the link to the dead puppet is still in links: ~p", [L]),

    step("trapping BEAM process linked to a puppet that exits normally"),
    P2 = puppet(),
    link(P2),
    cmd(P2, {exit, normal}),
    expect_exit(P2, normal, "puppet exit normal"),

    step("non-trapping BEAM process linked to a puppet that exits with boom dies with boom"),
    Self = self(),
    B = spawn(fun() -> Q0 = puppet(), link(Q0), Self ! {self(), puppet, Q0}, receive after infinity -> ok end end),
    MB = monitor(process, B),
    Q = receive {B, puppet, Q1} -> Q1 after ?T -> fail("helper did not spawn a puppet", []) end,
    await_link(B, Q, true),
    cmd(Q, {exit, boom}),
    expect_down(MB, B, boom, "non-trapping BEAM process linked to a puppet exiting with boom"),

    step("non-trapping BEAM process linked to a puppet that exits normally survives"),
    B2 = spawn(fun() -> Q20 = puppet(), link(Q20), Self ! {self(), puppet, Q20},
                        receive stop -> ok end end),
    MB2 = monitor(process, B2),
    Q2 = receive {B2, puppet, Q21} -> Q21 after ?T -> fail("helper did not spawn a puppet", []) end,
    await_link(B2, Q2, true),
    MQ2 = monitor(process, Q2),
    cmd(Q2, {exit, normal}),
    expect_down(MQ2, Q2, normal, "puppet exiting normally"),
    receive {'DOWN', MB2, _, _, R2} -> fail("a non-trapping process linked to a puppet that exited normally "
                                            "died: ~p", [R2])
    after 300 -> B2 ! stop
    end,

    step("linking to a dead puppet gives {'EXIT', P, noproc}"),
    link(P),
    expect_exit(P, noproc, "link to a dead puppet"),
    ok.

%% ---------------------------------------------------------------------------------------------------------
%% link_c_to_beam

t_link_c_to_beam() ->
    main_cnode(),
    process_flag(trap_exit, true),
    step("trapping puppet linked to a BEAM process that crashes"),
    P = puppet(),
    cmd(P, {trap_exit, true}),
    B = victim(),
    cmd(P, {link, B}),
    quiet(P, "trap_exit + link"),
    await_link(B, P, true),
    B ! {die, boom},
    case pmsg(P, "{'EXIT', B, boom}") of
        {'EXIT', B, boom} -> ok;
        M1 -> fail("trapping puppet linked to a crashing BEAM process: got ~p, want {'EXIT', ~p, boom}", [M1, B])
    end,

    step("signal order: a message, then the link exit of the same BEAM process"),
    [begin
         Bo = spawn(fun() -> receive {go, To} -> To ! {last_words, I}, exit({boom, I}) end end),
         MBo = monitor(process, Bo),
         cmd(P, {link, Bo}),
         quiet(P, "link"),
         await_link(Bo, P, true),
         Bo ! {go, P},
         receive {'DOWN', MBo, _, _, _} -> ok end,
         case ping(P) of
             [{last_words, I}, {'EXIT', Bo, {boom, I}}] -> ok;
             Got -> fail("round ~b: a BEAM process sent {last_words, ~b} then exited {boom, ~b}: the trapping "
                         "linked puppet got ~p (Erlang keeps signals from one sender in order)", [I, I, I, Got])
         end
     end || I <- lists:seq(1, 20)],

    step("non-trapping puppet linked to a BEAM process that crashes dies; its links fire"),
    P2 = puppet(),
    link(P2),                                              % this process is P2's trapping watcher
    B2 = victim(),
    cmd(P2, {link, B2}),
    quiet(P2, "link"),
    await_link(B2, P2, true),
    B2 ! {die, boom},
    expect_exit(P2, boom, "watcher linked to a puppet whose linked BEAM process crashed"),

    step("exit(P, kill) on a trapping puppet"),
    P3 = puppet(),
    cmd(P3, {trap_exit, true}),
    quiet(P3, "trap_exit"),
    M3 = monitor(process, P3),
    exit(P3, kill),
    expect_down(M3, P3, killed, "exit(P, kill) on a trapping puppet"),

    step("exit(P, normal) on a non-trapping puppet"),
    P4 = puppet(),
    M4 = monitor(process, P4),
    exit(P4, normal),
    quiet(P4, "exit(P, normal) on a non-trapping puppet"),
    receive {'DOWN', M4, _, _, R4} -> fail("exit(P, normal) killed a non-trapping puppet: ~p", [R4]) after 0 -> ok end,

    step("exit(P, normal) on a trapping puppet"),
    cmd(P4, {trap_exit, true}),
    quiet(P4, "trap_exit"),
    exit(P4, normal),
    case ping(P4) of
        [{'EXIT', Me, normal}] when Me =:= self() -> ok;
        Got4 -> fail("exit(P, normal) on a trapping puppet: forwarded ~p, want [{'EXIT', ~p, normal}]", [Got4, self()])
    end,

    step("exit(P, Reason) on a non-trapping puppet kills it with Reason"),
    P5 = puppet(),
    M5 = monitor(process, P5),
    exit(P5, {custom, reason}),
    expect_down(M5, P5, {custom, reason}, "exit(P, {custom, reason})"),

    step("exit signals from C: {exit_signal, B, Reason}"),
    P6 = puppet(),
    cmd(P6, {exit_signal, self(), hello}),
    expect_exit(P6, hello, "exit_signal from a puppet to a trapping process"),
    B6 = victim(),
    M6 = monitor(process, B6),
    cmd(P6, {exit_signal, B6, bye}),
    expect_down(M6, B6, bye, "exit_signal bye from a puppet to a non-trapping process"),
    B7 = victim(),
    M7 = monitor(process, B7),
    cmd(P6, {exit_signal, B7, normal}),
    quiet(P6, "exit_signal normal"),
    is_process_alive(B7) orelse fail("exit_signal normal from C killed a non-trapping BEAM process", []),
    cmd(P6, {exit_signal, B7, kill}),
    expect_down(M7, B7, killed, "exit_signal kill from a puppet"),
    ok.

%% ---------------------------------------------------------------------------------------------------------
%% unlink_races

-define(ROUNDS, 200).

t_unlink_races() ->
    main_cnode(),
    Self = self(),
    step("BEAM side: link, unlink, puppet exits (non-trapping BEAM process)"),
    %% Variants: 0: link, unlink, exit; 1: link, exit command, unlink (exit races the unlink);
    %% 2: a third process orders the exit while the linker unlinks; 3: the puppet unlinks, then exits.
    Helper = spawn_link(fun Loop() -> receive {exit_cmd, P} -> cmd(P, {exit, boom}), Loop() end end),
    Run = fun(Trap) ->
                  {Pid, M} = spawn_monitor(fun() -> process_flag(trap_exit, Trap), put(t0, now_ms()),
                                                    beam_rounds(Self, Helper, 0) end),
                  receive
                      {'DOWN', M, _, _, {rounds_done, Ms}} -> Ms;
                      {'DOWN', M, _, _, {fail, W}} -> fail("~ts", [W]);
                      {'DOWN', M, _, _, R} ->
                          fail("~ts BEAM process died with ~p in round ~p: a stray exit signal after unlink",
                               [case Trap of true -> "trapping"; false -> "non-trapping" end, R, get_progress(Pid)])
                  after 20000 -> exit(Pid, kill), fail("BEAM rounds took over 20 s (at round ~p)", [get_progress(Pid)])
                  end
          end,
    S1 = Run(false),
    step("BEAM side: same, trapping BEAM process (no 'EXIT' message may arrive)"),
    S2 = Run(true),
    flush_all(),

    step("C side: puppet links, unlinks, BEAM process exits"),
    P = puppet(),
    Pt = puppet(),
    cmd(Pt, {trap_exit, true}),
    quiet(Pt, "trap_exit"),
    monitor(process, P),
    monitor(process, Pt),
    T0 = now_ms(),
    [c_round(X, I, case X of P -> "non-trapping"; Pt -> "trapping" end)
     || I <- lists:seq(0, ?ROUNDS - 1), X <- [P, Pt]],
    info("unlink_races: ~b BEAM-side rounds, non-trapping ~b ms, trapping ~b ms; ~b C-side rounds x 2 puppets ~b ms",
         [?ROUNDS, S1, S2, ?ROUNDS, now_ms() - T0]),
    ok.

get_progress(Pid) ->
    case ets:lookup(interop, {progress, Pid}) of [{_, I}] -> I; [] -> none end.

beam_rounds(_, _, ?ROUNDS) ->
    receive M = {'EXIT', _, _} -> fail("stray ~p after all rounds", [M]) after 100 -> ok end,
    exit({rounds_done, now_ms() - get(t0)});
beam_rounds(Owner, Helper, I) ->
    ets:insert(interop, {{progress, self()}, {I, I rem 4}}),
    P = spawn(?CN, cnode_demo, puppet, [Owner]),
    M = monitor(process, P),
    case I rem 4 of
        0 -> link(P), unlink(P), cmd(P, {exit, boom});
        1 -> link(P), cmd(P, {exit, boom}), unlink(P);
        2 -> link(P), Helper ! {exit_cmd, P}, unlink(P);
        3 -> link(P), cmd(P, {unlink, self()}), cmd(P, {exit, boom})
    end,
    receive
        {'DOWN', M, process, P, boom} -> ok;
        {'DOWN', M, process, P, R} -> fail("round ~b: puppet exited with ~p, want boom", [I, R])
    after ?T -> fail("round ~b (variant ~b): no DOWN from the puppet", [I, I rem 4])
    end,
    receive {'EXIT', _, _} = E -> fail("round ~b (variant ~b): stray ~p after unlink", [I, I rem 4, E]) after 0 -> ok end,
    {links, []} =:= process_info(self(), links) orelse wait_until(fun() -> {links, []} =:= process_info(self(), links) end,
                                                                  1000, "links")
        orelse fail("round ~b: links not empty: ~p", [I, process_info(self(), links)]),
    beam_rounds(Owner, Helper, I + 1).

%% One C-side round for puppet X and a BEAM process B; each variant ends with B exiting after the link between
%% them was removed, so X must survive and (trapping) get no 'EXIT':
%%   0: X links, unlinks (both done: synchronised by ping), then B exits;
%%   1: X links (synchronised), then X unlinks and sends B {die, boom}: B gets UNLINK_ID before the message;
%%   2: B links to X, unlinks, exits at once (X only receives LINK, UNLINK_ID);
%%   3: X links (synchronised), then B unlinks and exits at once;
%%   4: X links (synchronised), then both unlink at the same time and B exits.
%% Not tested: X's unlink command racing B's exit. The C node applies an incoming exit signal when it arrives,
%% ahead of command messages already queued for X (as Erlang allows for signals of different senders), so
%% there X may legitimately die before it runs the unlink.
c_round(X, I, Kind) ->
    V = I rem 5,
    Linked = fun(B) -> cmd(X, {link, B}), quiet(X, "link"), await_link(B, X, true) end,
    Victim = fun() -> spawn(fun() -> receive
                                         {die, R} -> exit(R);
                                         {unlink_and_die, Who, R} -> unlink(Who), exit(R)
                                     end end) end,
    {B, Reason} =
        case V of
            0 -> B0 = Victim(), cmd(X, {link, B0}), cmd(X, {unlink, B0}), quiet(X, "link/unlink"),
                 await_link(B0, X, false), B0 ! {die, boom}, {B0, boom};
            1 -> B1 = Victim(), Linked(B1), cmd(X, {unlink, B1}), cmd(X, {send, B1, {die, {shutdown, I}}}),
                 {B1, {shutdown, I}};
            2 -> B2 = spawn(fun() -> receive go -> link(X), unlink(X), exit(boom) end end),
                 B2 ! go, {B2, boom};
            3 -> B3 = Victim(), Linked(B3), B3 ! {unlink_and_die, X, boom}, {B3, boom};
            4 -> B4 = Victim(), Linked(B4), cmd(X, {unlink, B4}), B4 ! {unlink_and_die, X, boom}, {B4, boom}
        end,
    MB = monitor(process, B),
    receive
        {'DOWN', MB, process, B, R0} when R0 =:= Reason; R0 =:= noproc -> ok;
        {'DOWN', MB, process, B, R0} -> fail("C round ~b (variant ~b): B exited with ~p, want ~p", [I, V, R0, Reason])
    after ?T -> fail("C round ~b (variant ~b): the BEAM process did not exit", [I, V])
    end,
    cmd(X, ping),
    case pong_or_down(X, []) of
        [] -> ok;
        {down, R, Before} -> fail("C round ~b (variant ~b): the ~ts puppet died with ~p though its link to the "
                                  "BEAM process that exited with ~p was removed (forwarded before: ~p)",
                                  [I, V, Kind, R, Reason, Before]);
        {no_answer, Before} -> fail("C round ~b (variant ~b): the ~ts puppet neither answered a ping nor died "
                                    "within ~b ms (forwarded before: ~p)", [I, V, Kind, ?T, Before]);
        Stray -> fail("C round ~b (variant ~b): the ~ts puppet forwarded ~p though its link to the BEAM process "
                      "was removed", [I, V, Kind, Stray])
    end.

pong_or_down(X, Acc) ->
    receive
        {puppet, X, pong} -> lists:reverse(Acc);
        {puppet, X, M} -> pong_or_down(X, [M | Acc]);
        {'DOWN', _, process, X, R} -> {down, R, lists:reverse(Acc)}
    after ?T -> {no_answer, lists:reverse(Acc)}
    end.

%% ---------------------------------------------------------------------------------------------------------
%% monitors

t_monitors() ->
    main_cnode(),
    step("monitor a puppet; it exits with {custom, 1}"),
    P = puppet(),
    M = monitor(process, P),
    cmd(P, {exit, {custom, 1}}),
    expect_down(M, P, {custom, 1}, "monitor of a puppet"),

    step("monitor a C gen_server by name, stopped by a call {exit, bye}"),
    KvPid = case ctl(?CN, {start_kv, kv_mon}, ?T) of
                {ok, {ok, Kp}} when is_pid(Kp) -> Kp;
                Other -> fail("cnode_ctl start_kv answered ~p", [Other])
            end,
    MN = monitor(process, {kv_mon, ?CN}),
    ok = gen_server:call({kv_mon, ?CN}, {put, a, 1}),
    case try gen_server:call({kv_mon, ?CN}, {exit, bye}, ?T) catch C1:E1 -> {C1, E1} end of
        {exit, {bye, {gen_server, call, _}}} -> ok;
        Got -> fail("gen_server:call {exit, bye}: got ~p, want exit {bye, {gen_server, call, _}}", [Got])
    end,
    expect_down(MN, {kv_mon, ?CN}, bye, "monitor by name of a C gen_server that stopped"),

    step("monitor a dead C pid and an unknown name"),
    MD = monitor(process, P),
    expect_down(MD, P, noproc, "monitor of a dead puppet"),
    MU = monitor(process, {no_such_name, ?CN}),
    expect_down(MU, {no_such_name, ?CN}, noproc, "monitor of an unknown name on the C node"),
    MK = monitor(process, KvPid),
    expect_down(MK, KvPid, noproc, "monitor of the stopped gen_server's pid"),

    step("demonitor of a puppet, then it exits"),
    P1 = puppet(),
    M1 = monitor(process, P1),
    true = demonitor(M1),
    M1b = monitor(process, P1),
    cmd(P1, {exit, gone}),
    expect_down(M1b, P1, gone, "second monitor after a demonitor"),
    receive {'DOWN', M1, _, _, _} = D1 -> fail("DOWN for a demonitored monitor: ~p", [D1]) after 100 -> ok end,

    step("the puppet monitors a BEAM process"),
    Q = puppet(),
    B = victim(),
    R = pmonitor(Q, B),
    quiet(Q, "monitor"),
    B ! {die, {shutdown, r}},
    case pmsg(Q, "DOWN") of
        {'DOWN', R, process, B, {shutdown, r}} -> ok;
        G1 -> fail("puppet monitoring a BEAM process: got ~p, want {'DOWN', ~p, process, ~p, {shutdown, r}}", [G1, R, B])
    end,

    step("signal order: a message, then the DOWN of the same BEAM process"),
    [begin
         Bo = spawn(fun() -> receive {go, To} -> To ! {last_words, I}, exit({boom, I}) end end),
         MBo = monitor(process, Bo),
         Ro = pmonitor(Q, Bo),
         quiet(Q, "monitor"),
         Bo ! {go, Q},
         receive {'DOWN', MBo, _, _, _} -> ok end,
         case ping(Q) of
             [{last_words, I}, {'DOWN', Ro, process, Bo, {boom, I}}] -> ok;
             GotM -> fail("round ~b: a BEAM process sent {last_words, ~b} then exited {boom, ~b}: the monitoring "
                         "puppet got ~p (Erlang keeps signals from one sender in order)", [I, I, I, GotM])
         end
     end || I <- lists:seq(1, 20)],

    step("the puppet monitors a registered BEAM process by {Name, Node}"),
    B2 = victim(),
    register(proc_suite_victim, B2),
    R2 = pmonitor(Q, {proc_suite_victim, node()}),
    quiet(Q, "monitor by name"),
    B2 ! {die, bye2},
    case pmsg(Q, "DOWN by name") of
        {'DOWN', R2, process, {proc_suite_victim, N2}, bye2} when N2 =:= node() -> ok;
        G2 -> fail("puppet monitoring {proc_suite_victim, ~ts}: got ~p, want {'DOWN', ~p, process, "
                   "{proc_suite_victim, ~ts}, bye2}", [node(), G2, R2, node()])
    end,

    step("the puppet monitors a dead BEAM pid and an unknown BEAM name"),
    R3 = pmonitor(Q, B),
    case pmsg(Q, "DOWN noproc") of
        {'DOWN', R3, process, B, noproc} -> ok;
        G3 -> fail("puppet monitoring a dead BEAM pid: got ~p, want {'DOWN', ~p, process, ~p, noproc}", [G3, R3, B])
    end,
    R4 = pmonitor(Q, {no_such_name, node()}),
    case pmsg(Q, "DOWN noproc (name)") of
        {'DOWN', R4, process, {no_such_name, N4}, noproc} when N4 =:= node() -> ok;
        G4 -> fail("puppet monitoring an unknown BEAM name: got ~p, want {'DOWN', ~p, process, {no_such_name, ~ts}, "
                   "noproc}", [G4, R4, node()])
    end,

    step("the puppet monitors a C process by local name"),
    {ok, {ok, _}} = ctl(?CN, {start_kv, kv_mon2}, ?T),
    R5 = pmonitor(Q, kv_mon2),
    try gen_server:call({kv_mon2, ?CN}, {exit, bye5}, ?T) catch _:_ -> ok end,
    case pmsg(Q, "DOWN of a C process by name") of
        {'DOWN', R5, process, {kv_mon2, ?CN}, bye5} -> ok;
        G5 -> fail("puppet monitoring the C process kv_mon2: got ~p, want {'DOWN', ~p, process, {kv_mon2, ~ts}, bye5}",
                   [G5, R5, ?CN])
    end,

    step("the puppet demonitors, then the BEAM process exits"),
    B6 = victim(),
    MB6 = monitor(process, B6),
    R6 = pmonitor(Q, B6),
    cmd(Q, {demonitor, R6}),
    quiet(Q, "demonitor"),
    B6 ! {die, boom},
    receive {'DOWN', MB6, _, _, _} -> ok end,
    quiet(Q, "DOWN after demonitor"),
    step("the puppet demonitors while the BEAM process exits (50 rounds)"),
    Races = [begin
         B7 = victim(),
         MB7 = monitor(process, B7),
         R7 = pmonitor(Q, B7),
         cmd(Q, {demonitor, R7}),
         B7 ! {die, boom},
         receive {'DOWN', MB7, _, _, _} -> ok end,
         %% The puppet may already have the DOWN in its mailbox when it runs the demonitor (as a BEAM
         %% process may): then demonitor reports not_found and the DOWN is still forwarded. A DOWN after
         %% a successful demonitor is a bug.
         case ping(Q) of
             [] -> dropped;
             [{error, not_found}, {'DOWN', R7, process, B7, boom}] -> delivered;
             Stray -> fail("round ~b: demonitor racing an exit: the puppet forwarded ~p", [I, Stray])
         end
     end || I <- lists:seq(1, 50)],
    info("monitors: demonitor racing an exit, 50 rounds: ~b before the DOWN, ~b after it was delivered",
         [length([x || dropped <- Races]), length([x || delivered <- Races])]),

    step("noconnection: monitors of processes on a second cnode that is killed"),
    CN2s = "pcnode2@127.0.0.1",
    CN2 = list_to_atom(CN2s),
    {H2, _} = start_cnode("cnode_p2", CN2s, []),
    process_flag(trap_exit, true),
    P2 = puppet(CN2),
    MP2 = monitor(process, P2),
    MName = monitor(process, {cnode_kv, CN2}),
    P2l = puppet(CN2),
    link(P2l),
    quiet(P2, "before kill -9"),
    signal(H2, "KILL"),
    T0 = now_ms(),
    expect_down(MP2, P2, noconnection, "monitor of a puppet on a killed cnode"),
    expect_down(MName, {cnode_kv, CN2}, noconnection, "monitor by name on a killed cnode"),
    expect_exit(P2l, noconnection, "link to a puppet on a killed cnode"),
    info("monitors: noconnection DOWN ~b ms after kill -9", [now_ms() - T0]),
    ok.
