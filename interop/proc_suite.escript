#!/usr/bin/env escript
%%! -connect_all false
%% Interop tests of issue 3, "processes across the wire": gen_server calls, rpc, spawn, aliases, big messages
%% and long names between build/cnode and real OTP/Elixir nodes (links, monitors and exit signals are
%% signals_suite.escript's). Run by interop/run.sh after suite.escript with
%% --cnode BIN --repo DIR --build DIR --epmd-port P --free-port P2 --tmp DIR --pidfile F [test...] and
%% ERL_EPMD_PORT=P; the harness is interop/interop_lib.erl, compiled into --tmp at startup. This node is
%% p@127.0.0.1; the shared cnode is pcnode@127.0.0.1. Most tests drive *puppets* (interop_lib's puppet/1):
%% C processes that run {'$puppet', Cmd} and forward every other message to their owner as {puppet, P, Msg}.
%% Output: `ok name` / `FAIL name: reason`, then `proc_suite: N passed, N failed`.
-mode(compile).
-export([main/1, init/1, handle_call/3, handle_cast/2, handle_info/2]).

-import(interop_lib, [cfg/1, info/2, step/1, fail/2, flat/2, now_ms/0, main_cnode/0, start_cnode/3,
                      start_erl/2, start_elixir/3, wait_exit/2, wait_line/4, lines_since/2, mark/1, tail/2,
                      status/1, wait_until/3, puppet/1, cmd/2, pmsg/2, ping/1, quiet/2, pmonitor/2,
                      expect_exit/3, expect_down/4]).

-define(CN_NAME, "pcnode@127.0.0.1").
-define(CN, 'pcnode@127.0.0.1').
-define(T, 5000).                                       % how long a test waits for an expected message

tests() ->
    %% {name, timeout in seconds, fun}
    [{gen_server_calls, 40, fun t_gen_server_calls/0},
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
%% puppets (interop_lib)

puppet() -> puppet(?CN).

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
