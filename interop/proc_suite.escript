#!/usr/bin/env escript
%%! -connect_all false
%% Interop tests of issue 3, "processes across the wire": links, unlinks, monitors, gen_server calls, rpc and
%% spawn between build/cnode and real OTP/Elixir nodes. Run by interop/run.sh after suite.escript with
%% --cnode BIN --repo DIR --build DIR --epmd-port P --free-port P2 --tmp DIR --pidfile F [test...] and
%% ERL_EPMD_PORT=P; the harness is interop/interop_lib.erl, compiled into --tmp at startup. This node is
%% p@127.0.0.1; the shared cnode is pcnode@127.0.0.1. Most tests drive *puppets*: C processes spawned with
%% spawn(CNode, cnode_demo, puppet, [Owner]) that run {'$puppet', Cmd} and forward every other message to
%% Owner as {puppet, P, Msg}. Output: `ok name` / `FAIL name: reason`, then `proc_suite: N passed, N failed`.
-mode(compile).
-export([main/1, init/1, handle_call/3, handle_cast/2, handle_info/2]).

-import(interop_lib, [cfg/1, info/2, step/1, fail/2, flat/2, now_ms/0, main_cnode/0, start_cnode/3,
                      start_erl/2, start_elixir/3, wait_exit/2, wait_line/4, mark/1, lines_since/2, tail/2,
                      signal/2, status/1, ctl/3, flush_all/0, wait_until/3]).

-define(CN_NAME, "pcnode@127.0.0.1").
-define(CN, 'pcnode@127.0.0.1').
-define(T, 5000).                                       % how long a test waits for an expected message

tests() ->
    %% {name, timeout in seconds, fun}
    [{link_beam_to_c, 15, fun t_link_beam_to_c/0},
     {link_c_to_beam, 15, fun t_link_c_to_beam/0},
     {unlink_races, 30, fun t_unlink_races/0},
     {monitors, 25, fun t_monitors/0},
     {gen_server_calls, 40, fun t_gen_server_calls/0},
     {c_calls_beam, 30, fun t_c_calls_beam/0},
     {spawn_from_beam, 30, fun t_spawn_from_beam/0},
     {aliases, 15, fun t_aliases/0},
     {rpc_unreachable_node, 30, fun t_rpc_unreachable_node/0},
     {big_message_from_c, 40, fun t_big_message_from_c/0},
     {long_names, 40, fun t_long_names/0}].

main(Args) ->
    Tmp = arg_value("--tmp", Args),
    Lib = filename:join(filename:dirname(escript:script_name()), "interop_lib.erl"),
    case Tmp =/= undefined andalso compile:file(Lib, [{outdir, Tmp}, return_errors]) of
        {ok, _} -> true = code:add_patha(Tmp);
        Err -> io:format("FAIL setup: cannot compile ~ts into ~p: ~p~nproc_suite: 0 passed, 1 failed~n",
                         [Lib, Tmp, Err]),
               halt(1)
    end,
    interop_lib:main(Args, "proc_suite", tests(),
                     #{node => 'p@127.0.0.1', budget_ms => 115000, shared_cnode => ?CN_NAME,
                       shared_cnode_proc => "cnode_p", fail_logs => ["cnode", "erl", "elixir"]}).

arg_value(_, []) -> undefined;
arg_value(K, [K, V | _]) -> V;
arg_value(K, [_ | T]) -> arg_value(K, T).

%% ---------------------------------------------------------------------------------------------------------
%% puppets

puppet() -> puppet(?CN).
puppet(Node) ->
    P = spawn(Node, cnode_demo, puppet, [self()]),
    node(P) =:= Node orelse fail("spawn(~ts, cnode_demo, puppet, _) gave ~p", [Node, P]),
    P.

cmd(P, Cmd) -> P ! {'$puppet', Cmd}, ok.

%% The next message puppet P sends its owner (this process).
pmsg(P, What) ->
    receive {puppet, P, M} -> M
    after ?T -> fail("puppet ~p: no message within ~b ms while waiting for ~ts", [P, ?T, What])
    end.

%% Pings P and returns what P forwarded before the pong (in order: anything P got before the ping).
ping(P) -> ping(P, []).
ping(P, Acc) ->
    cmd(P, ping),
    ping_wait(P, Acc).
ping_wait(P, Acc) ->
    receive
        {puppet, P, pong} -> lists:reverse(Acc);
        {puppet, P, M} -> ping_wait(P, [M | Acc])
    after ?T -> fail("puppet ~p did not answer ping within ~b ms (forwarded before: ~p)", [P, ?T, lists:reverse(Acc)])
    end.

%% Pings P and fails when it forwarded anything meanwhile.
quiet(P, Context) ->
    case ping(P) of
        [] -> ok;
        Stray -> fail("~ts: puppet forwarded unexpected ~p", [Context, Stray])
    end.

%% A puppet's monitor of Target: returns the ref.
pmonitor(P, Target) ->
    cmd(P, {monitor, Target}),
    case pmsg(P, "{monitor, Ref}") of
        {monitor, Ref} when is_reference(Ref) -> Ref;
        Other -> fail("puppet {monitor, ~p} answered ~p", [Target, Other])
    end.

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

expect_exit(P, Want, What) ->
    receive
        {'EXIT', P, Want} -> ok;
        {'EXIT', P, Other} -> fail("~ts: got {'EXIT', ~p, ~p}, want reason ~p", [What, P, Other, Want])
    after ?T -> fail("~ts: no {'EXIT', ~p, ~p} within ~b ms", [What, P, Want, ?T])
    end.

expect_down(Ref, Obj, Want, What) ->
    receive
        {'DOWN', Ref, process, O, R} when O =:= Obj, R =:= Want -> ok;
        {'DOWN', Ref, process, O, R} -> fail("~ts: got {'DOWN', _, process, ~p, ~p}, want object ~p reason ~p",
                                             [What, O, R, Obj, Want])
    after ?T -> fail("~ts: no DOWN (~p, ~p) within ~b ms", [What, Obj, Want, ?T])
    end.

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

%% ---------------------------------------------------------------------------------------------------------
%% gen_server_calls (Elixir)

t_gen_server_calls() ->
    main_cnode(),
    elixir_check("pe", "calls"),
    ok.

elixir_check(Short, Mode) ->
    H = start_elixir(Short, [filename:join(cfg(repo), "interop/proc_calls.exs"), ?CN_NAME, Mode], []),
    step("running interop/proc_calls.exs " ++ Mode),
    Res = wait_exit(H, 30000),
    Lines = lines_since(H, 0),
    [info("~ts: ~ts", [Mode, L]) || "TIME " ++ L <- Lines],
    case Res of
        {ok, 0} -> ok;
        {ok, St} -> fail("elixir ~ts exited ~p: ~ts", [Mode, St, lists:join(" | ", [L || L <- Lines, string:find(L, "want") =/= nomatch] ++ [tail(H, 3)])]);
        timeout -> fail("elixir ~ts did not finish within 30 s: ~ts", [Mode, tail(H, 8)])
    end.

%% ---------------------------------------------------------------------------------------------------------
%% c_calls_beam

%% A BEAM gen_server for the puppets to call: {put, K, V}, {get, K}, noreply, {stop, R}.
init([]) -> {ok, #{}}.
handle_call({put, K, V}, _, S) -> {reply, ok, S#{K => V}};
handle_call({get, K}, _, S) -> {reply, maps:find(K, S), S};
handle_call(noreply, _, S) -> {noreply, S};
handle_call({stop, R}, _, S) -> {stop, R, S}.
handle_cast({put, K, V}, S) -> {noreply, S#{K => V}}.
handle_info(_, S) -> {noreply, S}.

pcall(P, Server, Req, Timeout) ->
    cmd(P, {call, Server, Req, Timeout}),
    T0 = now_ms(),
    case pmsg(P, "{result, ...}") of
        {result, St, R} -> {St, R, now_ms() - T0};
        Other -> fail("puppet call ~p ~p answered ~p", [Server, Req, Other])
    end.

want_call(P, Server, Req, Want) ->
    case pcall(P, Server, Req, ?T) of
        {St, R, _} when {St, R} =:= Want -> ok;
        {St, R, Ms} -> fail("puppet call ~p ~p: got {result, ~p, ~p} after ~b ms, want ~p", [Server, Req, St, R, Ms, Want])
    end.

t_c_calls_beam() ->
    main_cnode(),
    {ok, Srv} = gen_server:start_link({local, proc_beam_srv}, ?MODULE, [], []),
    P = puppet(),
    step("puppet calls a BEAM gen_server by {Name, Node} and by pid"),
    want_call(P, {proc_beam_srv, node()}, {put, a, 1}, {ok, ok}),
    want_call(P, {proc_beam_srv, node()}, {get, a}, {ok, {ok, 1}}),
    want_call(P, Srv, {get, a}, {ok, {ok, 1}}),
    want_call(P, Srv, {get, nope}, {ok, error}),
    step("puppet casts, then calls"),
    cmd(P, {cast, {proc_beam_srv, node()}, {put, b, 2}}),
    want_call(P, Srv, {get, b}, {ok, {ok, 2}}),
    step("1000 calls from C"),
    T0 = now_ms(),
    [want_call(P, Srv, {get, b}, {ok, {ok, 2}}) || _ <- lists:seq(1, 1000)],
    info("c_calls_beam: 1000 calls C -> BEAM in ~b ms", [now_ms() - T0]),

    step("calls to an unregistered name and a dead pid"),
    Dead = spawn(fun() -> ok end),
    wait_until(fun() -> not is_process_alive(Dead) end, 1000, "dead"),
    [case pcall(P, S, {get, a}, 5000) of
         {exit, noproc, Ms} when Ms < 1000 -> ok;
         {St, R, Ms} -> fail("puppet call to ~ts: got {result, ~p, ~p} after ~b ms, want {result, exit, noproc} "
                             "within 1 s", [W, St, R, Ms])
     end || {W, S} <- [{"an unregistered BEAM name", {no_such_srv, node()}}, {"a dead BEAM pid", Dead}]],

    step("call with a 200 ms timeout to a server that does not answer"),
    case pcall(P, Srv, noreply, 200) of
        {timeout, _, Ms1} when Ms1 >= 180, Ms1 < 2000 -> info("c_calls_beam: timeout after ~b ms", [Ms1]);
        {St1, R1, Ms1} -> fail("puppet call noreply with 200 ms: got {result, ~p, ~p} after ~b ms, want timeout",
                               [St1, R1, Ms1])
    end,
    want_call(P, Srv, {get, a}, {ok, {ok, 1}}),            % the late-reply-free server still answers
    quiet(P, "after a timed out call"),

    step("call to a BEAM gen_server that stops mid-call"),
    {ok, Srv2} = gen_server:start({local, proc_beam_srv2}, ?MODULE, [], []),
    want_call(P, {proc_beam_srv2, node()}, {stop, {shutdown, mid_call}}, {exit, {shutdown, mid_call}}),
    is_process_alive(Srv2) andalso fail("the BEAM server did not stop", []),

    step("starting erl peer r for rpc/erpc"),
    {_, R} = start_erl("pr", #{}),
    pong = net_adm:ping(R),
    Cases = [{R, erlang, node, []}, {R, lists, reverse, [[1, 2, 3]]}, {R, no_such_mod, no_fun, [1]},
             {R, lists, no_such_fun, []}, {R, erlang, error, [oops]}, {R, erlang, exit, [bye]},
             {R, erlang, throw, [ball]}, {R, erlang, apply, [fun erlang:node/0, []]}, {node(), erlang, node, []}],
    step("rpc from C vs rpc:call from BEAM, erpc from C vs erpc:call from BEAM"),
    Bad = [Why || K <- [rpc, erpc], C <- Cases, Why <- [compare_rpc(P, K, C)], Why =/= ok],
    quiet(P, "after rpc"),
    Bad =:= [] orelse fail("~b of ~b rpc/erpc results differ: ~ts", [length(Bad), 2 * length(Cases),
                                                                   lists:join("; ", Bad)]),
    ok.

%% rpc and erpc from C to a node that does not exist: what OTP's rpc:call / erpc:call give, promptly.
t_rpc_unreachable_node() ->
    main_cnode(),
    P = puppet(),
    Bad = [Why || K <- [rpc, erpc], Why <- [compare_rpc(P, K, {'nosuchnode@127.0.0.1', erlang, node, []})],
                  Why =/= ok],
    Bad =:= [] orelse fail("~ts", [lists:join("; ", Bad)]),
    ok.

compare_rpc(P, Kind, {N, M, F, A}) ->
    Beam = case Kind of
               rpc -> {ok, rpc:call(N, M, F, A, ?T)};
               erpc -> try erpc:call(N, M, F, A, ?T) of
                           V -> {ok, V}
                       catch
                           throw:V -> {exit, {throw, V}};
                           exit:{exception, V} -> {exit, {exit, V}};
                           error:{exception, V, S} -> {exit, {error, V, S}};
                           error:{erpc, W} -> {exit, {error, {erpc, W}}};
                           C:E -> {exit, {other, C, E}}
                       end
           end,
    cmd(P, {Kind, N, M, F, A}),
    T0 = now_ms(),
    {St, Got} = receive
                    {puppet, P, {result, St0, R0}} -> {St0, R0};
                    {puppet, P, Other} -> fail("puppet ~p ~p answered ~p", [Kind, {N, M, F, A}, Other])
                after 12000 -> {no_result, none}      % the C side's own timeout is 10 s
                end,
    Ms = now_ms() - T0,
    case norm({St, Got}) =:= norm(Beam) of
        true -> ok;
        false -> flat("~p from C of ~ts:~ts/~b on ~ts: got {result, ~p, ~p} after ~b ms; BEAM's ~p:call gives "
                      "~p, i.e. want {result, ~p, ~p}",
                      [Kind, M, F, length(A), N, St, Got, Ms, Kind, element(2, Beam),
                       element(1, Beam), element(2, Beam)])
    end.

%% Stack traces differ by where the call came from: compare only the first frame's module/function/args.
norm([{M, F, A, L} | _]) when is_atom(M), is_atom(F), is_list(L) -> [{M, F, norm_args(A)}];
norm(T) when is_tuple(T) -> list_to_tuple([norm(E) || E <- tuple_to_list(T)]);
norm(L) when is_list(L) -> [norm(E) || E <- L];
norm(X) -> X.

norm_args(A) when is_list(A) -> length(A);
norm_args(A) -> A.

%% ---------------------------------------------------------------------------------------------------------
%% spawn_from_beam

t_spawn_from_beam() ->
    main_cnode(),
    process_flag(trap_exit, true),
    step("spawn(CNode, cnode_demo, echo, [])"),
    E = spawn(?CN, cnode_demo, echo, []),
    (is_pid(E) andalso node(E) =:= ?CN) orelse fail("spawn of cnode_demo:echo gave ~p", [E]),
    T = {hello, make_ref(), <<"bin">>, [1.5]},
    E ! {self(), T},
    receive T -> ok after ?T -> fail("the spawned echo process did not echo", []) end,

    step("spawn_link of a puppet"),
    PL = spawn_link(?CN, cnode_demo, puppet, [self()]),
    quiet(PL, "spawn_link"),
    cmd(PL, {exit, linked_bye}),
    expect_exit(PL, linked_bye, "spawn_link'ed puppet exiting"),

    step("spawn_monitor of a puppet"),
    {PM, MRef} = spawn_monitor(?CN, cnode_demo, puppet, [self()]),
    quiet(PM, "spawn_monitor"),
    cmd(PM, {exit, monitored_bye}),
    expect_down(MRef, PM, monitored_bye, "spawn_monitor'ed puppet exiting"),

    step("spawn_opt with link and monitor, killed"),
    {PO, MO} = spawn_opt(?CN, cnode_demo, puppet, [self()], [link, monitor]),
    exit(PO, kill),
    expect_down(MO, PO, killed, "spawn_opt [link, monitor] puppet killed"),
    expect_exit(PO, killed, "spawn_opt [link, monitor] puppet killed"),

    step("spawn of a fun (not an entry point)"),
    T0 = now_ms(),
    F = spawn(?CN, fun() -> ok end),
    Ms0 = now_ms() - T0,
    (is_pid(F) andalso node(F) =:= ?CN andalso Ms0 < 1000) orelse
        fail("spawn(CNode, fun) gave ~p after ~b ms", [F, Ms0]),
    MF = monitor(process, F),
    receive
        {'DOWN', MF, process, F, noproc} -> ok;
        {'DOWN', MF, process, F, {undef, _}} -> ok;
        {'DOWN', MF, process, F, RF} -> fail("spawn(CNode, fun): DOWN ~p, want {undef, _} or noproc", [RF])
    after ?T -> fail("spawn(CNode, fun): no DOWN", [])
    end,
    {F2, MF2} = spawn_monitor(?CN, fun() -> ok end),
    receive
        {'DOWN', MF2, process, F2, {undef, _} = U} -> info("spawn_from_beam: fun spawn exits with ~0p", [U]);
        {'DOWN', MF2, process, F2, RF2} -> fail("spawn_monitor(CNode, fun): DOWN ~p, want {undef, _}", [RF2])
    after ?T -> fail("spawn_monitor(CNode, fun): no DOWN", [])
    end,
    step("spawn of an unknown MFA with a link"),
    F3 = spawn_link(?CN, no_such_mod, f, [1]),
    receive
        {'EXIT', F3, {undef, [{no_such_mod, f, [1], _} | _]}} -> ok;
        {'EXIT', F3, RF3} -> fail("spawn_link(CNode, no_such_mod, f, [1]): EXIT ~p, want {undef, [{no_such_mod, f, [1], _}]}", [RF3])
    after ?T -> fail("spawn_link(CNode, no_such_mod, f, [1]): no EXIT", [])
    end,

    step("rpc/erpc of a function the C node lacks: undef at once; of a BIF it answers (node/0, is_process_alive/1): the value"),
    T1 = now_ms(),
    RR = rpc:call(?CN, erlang, system_info, [otp_release], ?T),
    Ms1 = now_ms() - T1,
    case RR of
        {badrpc, {'EXIT', {undef, _}}} when Ms1 < 1000 -> ok;
        _ -> fail("rpc:call(CNode, erlang, system_info, [otp_release]) gave ~p after ~b ms, want "
                  "{badrpc, {'EXIT', {undef, _}}} within 1 s", [RR, Ms1])
    end,
    T2 = now_ms(),
    ER = try erpc:call(?CN, erlang, system_info, [otp_release], ?T) catch C2:E2 -> {C2, E2} end,
    Ms2 = now_ms() - T2,
    case ER of
        {error, {exception, undef, _}} when Ms2 < 1000 -> ok;
        _ -> fail("erpc:call(CNode, erlang, system_info, [otp_release]) gave ~p after ~b ms, want error "
                  "{exception, undef, _}", [ER, Ms2])
    end,
    ?CN = rpc:call(?CN, erlang, node, [], ?T),
    ?CN = erpc:call(?CN, erlang, node, [], ?T),
    true = lists:member(node(), erpc:call(?CN, erlang, nodes, [], ?T)),
    Echo = spawn(?CN, cnode_demo, echo, []),
    true = erpc:call(?CN, 'Elixir.Process', 'alive?', [Echo], ?T),
    true = rpc:call(?CN, erlang, is_process_alive, [Echo], ?T),
    exit(Echo, kill),
    wait_until(fun() -> erpc:call(?CN, erlang, is_process_alive, [Echo], ?T) =:= false end, 2000, "echo dead")
        orelse fail("erpc is_process_alive still true 2 s after exit(Echo, kill)", []),
    case try erpc:call(?CN, erlang, is_process_alive, [self()], ?T) catch C3:E3 -> {C3, E3} end of
        {error, {exception, badarg, _}} -> ok;
        Other -> fail("erpc is_process_alive of a pid of another node gave ~p, want badarg", [Other])
    end,

    step("Elixir Node.spawn / Node.spawn_monitor / :rpc.call"),
    elixir_check("pes", "spawn"),
    ok.

%% ---------------------------------------------------------------------------------------------------------
%% aliases

t_aliases() ->
    main_cnode(),
    step("a puppet's alias receives; after unalias it does not"),
    P = puppet(),
    cmd(P, alias),
    A = case pmsg(P, "{alias, Ref}") of
            {alias, A0} when is_reference(A0) -> A0;
            O -> fail("puppet alias answered ~p", [O])
        end,
    A ! {via_alias, 1},
    case ping(P) of
        [{via_alias, 1}] -> ok;
        G1 -> fail("message sent to the puppet's alias: forwarded ~p, want [{via_alias, 1}]", [G1])
    end,
    P ! {by_pid, 1},
    case ping(P) of
        [{by_pid, 1}] -> ok;
        G2 -> fail("message sent by pid after alias: forwarded ~p", [G2])
    end,
    cmd(P, {unalias, A}),
    quiet(P, "unalias"),
    A ! {via_alias, 2},
    quiet(P, "message to a removed alias"),
    step("the alias dies with the puppet"),
    cmd(P, alias),
    A2 = case pmsg(P, "{alias, Ref}") of {alias, A20} -> A20; O2 -> fail("puppet alias answered ~p", [O2]) end,
    M = monitor(process, P),
    cmd(P, {exit, done}),
    expect_down(M, P, done, "puppet exit"),
    A2 ! {via_alias, 3},                                  % dropped by the C node; nothing to observe but a crash
    E = spawn(?CN, cnode_demo, echo, []),
    E ! {self(), still_up},
    receive still_up -> ok after ?T -> fail("the C node did not answer after a send to a dead alias", []) end,
    ok.

%% ---------------------------------------------------------------------------------------------------------
%% big_message_from_c

-define(BIG, (10 bsl 20)).
-define(BIG2, (1 bsl 20 + 3)).

t_big_message_from_c() ->
    Tick = "4",
    Name = "pcnodebig@127.0.0.1",
    {Cn, _} = start_cnode("cnode_pbig", Name, ["--ticktime", Tick]),
    %% This node (ticktime 60) must not connect to the tick-4 nodes: the peer does the work, reports on stdout.
    Code = "spawn(fun() -> CN = '" ++ Name ++ "', N = " ++ integer_to_list(?BIG) ++ ", N2 = "
        ++ integer_to_list(?BIG2) ++ ", register(big_rx, self()),
  Exp = fun(L) -> binary:part(binary:copy(list_to_binary(lists:seq(0, 250)), L div 251 + 1), 0, L) end,
  Check = fun(What, L, T0) -> receive
      Bin when is_binary(Bin) ->
        Ms = erlang:monotonic_time(millisecond) - T0,
        E = Exp(L),
        io:format(\"BIG ~s size=~b equal=~p prefix=~b md5=~s ms=~b~n\", [What, byte_size(Bin), Bin =:= E,
                  binary:longest_common_prefix([Bin, E]), binary:encode_hex(erlang:md5(Bin)), Ms]);
      {nodedown, CN} -> io:format(\"BIG ~s nodedown~n\", [What]);
      Other -> io:format(\"BIG ~s other ~P~n\", [What, Other, 12])
    after 30000 -> io:format(\"BIG ~s timeout~n\", [What])
    end end,
  pong = net_adm:ping(CN),
  monitor_node(CN, true),
  P = spawn(CN, cnode_demo, puppet, [self()]),
  P ! {'$puppet', {send_big, self(), N}},
  Check(pid, N, erlang:monotonic_time(millisecond)),
  P ! {'$puppet', {send_big, {big_rx, node()}, N2}},
  Check(name, N2, erlang:monotonic_time(millisecond)),
  receive {nodedown, CN} -> io:format(\"AFTER nodedown~n\")
  after 6000 -> io:format(\"AFTER connected=~p~n\", [lists:member(CN, nodes())])
  end,
  P ! {'$puppet', ping},
  receive {puppet, P, pong} -> io:format(\"PONG~n\") after 5000 -> io:format(\"NOPONG~n\") end
end),",
    M0 = mark(Cn),
    {Peer, PeerName} = start_erl("pbig", #{args => ["-kernel", "net_ticktime", Tick], eval => Code}),
    step("waiting for the 10 MiB binary at " ++ atom_to_list(PeerName)),
    [begin
         case wait_line(Peer, "BIG " ++ What, 0, 35000) of
             {ok, Line} ->
                 Want = flat("BIG ~ts size=~b equal=true prefix=~b md5=~ts ", [What, Len, Len, md5_hex(Len)]),
                 lists:prefix(Want, Line) orelse fail("~ts: want '~ts...', got '~ts'", [What, Want, Line]),
                 info("big_message_from_c: ~ts", [Line]);
             R -> fail("no BIG ~ts line from the receiving peer (~p): ~ts", [What, R, tail(Peer, 5)])
         end
     end || {What, Len} <- [{"pid", ?BIG}, {"name", ?BIG2}]],
    step("checking the connection stays up for 6 s"),
    case wait_line(Peer, "AFTER ", 0, 10000) of
        {ok, "AFTER connected=true"} -> ok;
        R2 -> fail("after the big sends: ~p", [R2])
    end,
    case wait_line(Peer, "PONG", 0, 6000) of
        {ok, "PONG"} -> ok;
        R3 -> fail("the puppet did not answer a ping after the big sends: ~p", [R3])
    end,
    case [L || L <- lines_since(Cn, M0), string:find(L, "nodedown") =/= nomatch] of
        [] -> ok;
        Downs -> fail("cnode logged: ~ts", [lists:join(" | ", Downs)])
    end,
    status(Cn) =:= running orelse fail("cnode_pbig exited: ~p", [status(Cn)]),
    ok.

md5_hex(Len) ->
    Bin = binary:part(binary:copy(list_to_binary(lists:seq(0, 250)), Len div 251 + 1), 0, Len),
    binary_to_list(binary:encode_hex(erlang:md5(Bin))).

%% ---------------------------------------------------------------------------------------------------------
%% long_names (issue 16): atoms are 255 characters, up to 1,020 bytes of UTF-8. The C node replies to, links,
%% monitors and sends to pids, names and nodes whose atoms are that long in 1-, 2- and 4-byte characters (a
%% 256-byte buffer for a node's alive part once overflowed here), and keeps serving: ping, cnode_kv calls.

long_atom_text(Chars, Width) ->
    C = case Width of 1 -> $a; 2 -> 16#E9; 4 -> 16#1F600 end,        % a, é, 😀
    lists:duplicate(Chars, C).

%% A pid of a node that does not exist, NEW_PID_EXT with an ATOM_UTF8_EXT node name.
fake_pid(NodeText) ->
    B = unicode:characters_to_binary(NodeText),
    binary_to_term(<<131, 88, 118, (byte_size(B)):16, B/binary, 1:32, 0:32, 1:32>>).

kv_alive(What) ->
    ok = gen_server:call({cnode_kv, ?CN}, {put, What, alive}, ?T),
    {ok, alive} = gen_server:call({cnode_kv, ?CN}, {get, What}, ?T),
    pong = net_adm:ping(?CN).

t_long_names() ->
    main_cnode(),
    process_flag(trap_exit, true),
    lists:foreach(fun long_names/1, [1, 2, 4]),
    ok.

long_names(W) ->
    Host = "@127.0.0.1",
    NodeText = long_atom_text(255 - length(Host), W) ++ Host,
    Node = list_to_atom(NodeText),
    Name = list_to_atom(long_atom_text(255, W)),
    LPid = fake_pid(NodeText),
    Bytes = byte_size(atom_to_binary(Node, utf8)),
    step(flat("~b-byte characters: a node name of 255 characters (~b bytes)", [W, Bytes])),
    node(LPid) =:= Node orelse fail("fake pid ~p is on ~p", [LPid, node(LPid)]),

    step("echo replies to a pid of that node (the reply needs a connection: EPMD has no such name)"),
    {echo, ?CN} ! {LPid, hi},
    kv_alive({echo, W}),

    step("a puppet links to it, monitors it and its names, and sends to them"),
    P = puppet(),
    cmd(P, {trap_exit, true}),
    cmd(P, {link, LPid}),
    case pmsg(P, "{'EXIT', LongPid, noconnection}") of
        {'EXIT', LPid, noconnection} -> ok;
        M1 -> fail("link to a pid of an unreachable long-named node: got ~p, want {'EXIT', ~p, noconnection}",
                   [M1, LPid])
    end,
    lists:foreach(
      fun(Target) ->
              R = pmonitor(P, Target),
              case pmsg(P, "DOWN noconnection") of
                  {'DOWN', R, process, Target, noconnection} -> ok;
                  M2 -> fail("monitor of ~p: got ~p, want DOWN noconnection", [Target, M2])
              end
      end, [LPid, {Name, Node}]),
    cmd(P, {send, LPid, hello}),
    cmd(P, {send, {Name, Node}, hello}),
    quiet(P, "sends to long names"),
    cmd(P, {send, {Name, ?CN}, hello}),                 % a local name nobody has: an error, as badarg in OTP
    case pmsg(P, "the error of a send to an unknown local name") of
        {error, _} -> ok;
        M4 -> fail("send to an unknown long local name: got ~p, want {error, _}", [M4])
    end,

    step("a BEAM process monitors and sends to a long name on the C node"),
    MU = monitor(process, {Name, ?CN}),
    expect_down(MU, {Name, ?CN}, noproc, "monitor of an unknown long name on the C node"),
    {Name, ?CN} ! hello,
    P ! {hello, Node, Name, LPid},                       % a message full of long atoms, forwarded to us
    case pmsg(P, "the forwarded message") of
        {hello, Node, Name, LPid} -> ok;
        M3 -> fail("forwarded message with long atoms: got ~p", [M3])
    end,
    cmd(P, {exit, done}),
    kv_alive({after_names, W}).
