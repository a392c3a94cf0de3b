#!/usr/bin/env escript
%%! -hidden -connect_all false
%% Interop tests of issue 17: cnode_ctl is a gen_server. Every command is sent both ways, as
%% gen_server:call({cnode_ctl, Node}, Cmd) (what Elixir's GenServer.call/2 sends) and as the older
%% {From, Ref, Cmd} message, and the two answers are compared (for commands with side effects, a matching pair:
%% start_kv with two names, a lock each, ...). The shared C node cnode_c1@127.0.0.1 runs with --horde-registry
%% MyApp.Registry --horde-supervisor MyApp.Sup; one test adds cnode_c2 so a start_child is proxied to the owning
%% member, which answers the gen_server caller itself. This node (ct@127.0.0.1) is hidden, so it is a member of
%% neither global nor Horde. Run by interop/run.sh with --cnode BIN --repo DIR --build DIR --epmd-port P
%% --free-port P2 --tmp DIR --pidfile F. Output: `ok name` / `FAIL name: reason`, then `ctl_suite: N passed, N failed`.
-mode(compile).
-export([main/1]).

-import(interop_lib, [cfg/1, info/2, step/1, fail/2, now_ms/0, start_cnode/3, start_elixir/3, wait_line/4,
                      wait_exit/2, ctl/3, wait_until/3, main_cnode/0, tail/2]).

-define(CN_NAME, "cnode_c1@127.0.0.1").
-define(CN, 'cnode_c1@127.0.0.1').
-define(CN2_NAME, "cnode_c2@127.0.0.1").
-define(CN2, 'cnode_c2@127.0.0.1').
-define(REG, 'Elixir.MyApp.Registry').
-define(SUP, 'Elixir.MyApp.Sup').
-define(COUNTER, 'Elixir.CNode.Demo.Counter').
-define(T, 5000).

%% Every command cnode_ctl has (README, "Demo processes"); every_command checks each was called both ways.
-define(ALL, [send, nodes, otp_release, start_kv, stats,
              global_whereis, global_send, global_register, global_unregister, global_sync, global_set_lock,
              global_del_lock, global_trans,
              crdt_start, crdt_set_neighbours, crdt_put, crdt_delete, crdt_read, crdt_root, crdt_stats,
              horde_register, horde_unregister, horde_lookup, horde_members,
              horde_sup_start_child, horde_sup_which_children, horde_sup_count]).

tests() ->
    [{basics, 20, fun t_basics/0},
     {global, 30, fun t_global/0},
     {crdt, 20, fun t_crdt/0},
     {horde_registry, 20, fun t_horde_registry/0},
     {horde_supervisor, 20, fun t_horde_supervisor/0},
     {horde_sup_proxied, 40, fun t_horde_sup_proxied/0},
     {elixir_genserver_call, 40, fun t_elixir/0},
     {otp_release_kv, 30, fun t_otp_release/0},
     {every_command, 5, fun t_every_command/0},
     {stops_cleanly, 20, fun t_stop/0, #{shared_cnode => false}}].

main(Args) ->
    Tmp = arg_value("--tmp", Args),
    Lib = filename:join(filename:dirname(escript:script_name()), "interop_lib.erl"),
    case Tmp =/= undefined andalso compile:file(Lib, [{outdir, Tmp}, return_errors]) of
        {ok, _} -> true = code:add_patha(Tmp);
        Err -> io:format("FAIL setup: cannot compile ~ts into ~p: ~p~nctl_suite: 0 passed, 1 failed~n",
                         [Lib, Tmp, Err]),
               halt(1)
    end,
    interop_lib:main(Args, "ctl_suite", tests(),
                     #{node => 'ct@127.0.0.1', budget_ms => 150000, shared_cnode => ?CN_NAME,
                       shared_cnode_proc => "cnode_c1",
                       shared_cnode_args => ["--horde-registry", "MyApp.Registry", "--horde-supervisor", "MyApp.Sup"],
                       fail_logs => ["cnode", "elixir"]}).

arg_value(_, []) -> undefined;
arg_value(K, [K, V | _]) -> V;
arg_value(K, [_ | T]) -> arg_value(K, T).

%% ---------------------------------------------------------------------------------------------------------
%% the two ways of asking

op(Cmd) when is_atom(Cmd) -> Cmd;
op(Cmd) when is_tuple(Cmd), tuple_size(Cmd) > 0 -> element(1, Cmd);
op(_) -> other.

called(Cmd, Form) -> ets:insert(interop, {{ctl_called, op(Cmd), Form}, true}).

%% gen_server:call({cnode_ctl, Node}, Cmd)
g(Cmd) -> g(?CN, Cmd).
g(Node, Cmd) ->
    called(Cmd, call),
    try gen_server:call({cnode_ctl, Node}, Cmd, ?T)
    catch exit:Why -> fail("gen_server:call(cnode_ctl, ~0tp) on ~ts exited: ~0tp", [Cmd, Node, Why])
    end.

%% {cnode_ctl, Node} ! {self(), Ref, Cmd}: the first {Ref, Answer}
r(Cmd) -> r(?CN, Cmd).
r(Node, Cmd) ->
    called(Cmd, message),
    case ctl(Node, Cmd, ?T) of
        {ok, A} -> A;
        timeout -> fail("cnode_ctl on ~ts did not answer {From, Ref, ~0tp} within ~b ms", [Node, Cmd, ?T])
    end.

%% Both ways, the same answer; returns it.
both(Cmd) ->
    G = g(Cmd),
    R = r(Cmd),
    G =:= R orelse fail("~0tp: the call answered ~0tp, the {From, Ref, Cmd} form ~0tp", [Cmd, G, R]),
    G.

%% Both ways; answers of the same shape (a map's keys, a list's length) where the values move on their own.
both_like(Cmd) ->
    G = g(Cmd),
    R = r(Cmd),
    shape(G) =:= shape(R) orelse fail("~0tp: the call answered ~0tp, the {From, Ref, Cmd} form ~0tp", [Cmd, G, R]),
    G.

shape(M) when is_map(M) -> {map, lists:sort(maps:keys(M))};
shape(T) -> T.

expect(Want, Got, What) ->
    Want =:= Got orelse fail("~ts: want ~0tp, got ~0tp", [What, Want, Got]),
    Got.

no_more(Ref, Ms) ->
    receive {Ref, M} -> fail("a second answer ~0tp", [M]) after Ms -> ok end.

%% ---------------------------------------------------------------------------------------------------------
%% tests

t_basics() ->
    main_cnode(),
    step("nodes and stats"),
    Nodes = both(nodes),
    lists:member(node(), Nodes) orelse fail("nodes ~0tp lacks this node", [Nodes]),
    #{messages_dropped := _} = both_like(stats),
    step("send"),
    ok = g({send, self(), {sent, call}}),
    receive {sent, call} -> ok after ?T -> fail("{send, Self, M} by call: nothing arrived", []) end,
    ok = r({send, self(), {sent, message}}),
    receive {sent, message} -> ok after ?T -> fail("{send, Self, M} by message: nothing arrived", []) end,
    both({send, {nobody_here, ?CN}, x}),
    step("start_kv, one each way, then the names taken"),
    {ok, P1} = g({start_kv, ctl_kv_call}),
    {ok, P2} = r({start_kv, ctl_kv_message}),
    ok = gen_server:call(P1, {put, k, 1}, ?T),
    {ok, 1} = gen_server:call(P1, {get, k}, ?T),
    error = gen_server:call(P2, {get, k}, ?T),
    E1 = g({start_kv, ctl_kv_message}),
    E2 = r({start_kv, ctl_kv_call}),
    {error, _} = expect(E1, E2, "start_kv of a taken name"),
    step("unknown commands and shapes"),
    [expect({error, unknown_command}, both(C), "unknown") ||
        C <- [no_such_command, {no_such_command, 1}, "a string", 42, {}, send, {send, x}, {start_kv, "x"},
              {stats}, {nodes}, crdt_read, horde_members, horde_sup_count, {horde_nonesuch, ?REG}]],
    ok.

t_global() ->
    main_cnode(),
    {ok, P1} = g({start_kv, ctl_gkv1}),
    {ok, P2} = r({start_kv, ctl_gkv2}),
    step("global_sync"),
    ok = g(global_sync),
    ok = r(global_sync),
    ok = both({global_sync}),
    step("global_register: a name each way, then each other's"),
    yes = g({global_register, ctl_g1, P1}),
    yes = r({global_register, ctl_g2, P2}),
    no = g({global_register, ctl_g2, P1}),
    no = r({global_register, ctl_g1, P2}),
    step("global_whereis"),
    P1 = both({global_whereis, ctl_g1}),
    P2 = both({global_whereis, ctl_g2}),
    undefined = both({global_whereis, ctl_nobody}),
    step("global_send: a gen_server call to the kv under its global name, answered to us"),
    T1 = make_ref(),
    ok = g({global_send, ctl_g1, {'$gen_call', {self(), T1}, {put, k, v1}}}),
    receive {T1, ok} -> ok after ?T -> fail("global_send by call: the kv did not answer", []) end,
    T2 = make_ref(),
    ok = r({global_send, ctl_g1, {'$gen_call', {self(), T2}, {get, k}}}),
    receive {T2, {ok, v1}} -> ok after ?T -> fail("global_send by message: the kv did not answer", []) end,
    {error, _} = both({global_send, ctl_nobody, x}),
    step("global_unregister"),
    ok = g({global_unregister, ctl_g1}),
    ok = r({global_unregister, ctl_g2}),
    undefined = both({global_whereis, ctl_g1}),
    undefined = both({global_whereis, ctl_g2}),
    step("global_set_lock: one each way; another requester of the same resource is refused both ways"),
    true = g({global_set_lock, {ctl_lk1, a}, default, -1}),
    true = r({global_set_lock, {ctl_lk2, a}, [?CN], -1}),
    false = g({global_set_lock, {ctl_lk2, b}, default, 0}),
    false = r({global_set_lock, {ctl_lk1, b}, default, 0}),
    step("global_trans on a held resource: aborted, and no in_trans either way"),
    aborted = g({global_trans, {ctl_lk1, b}, default, 0}),
    Ref = make_ref(),
    {cnode_ctl, ?CN} ! {self(), Ref, {global_trans, {ctl_lk1, b}, default, 0}},
    called(global_trans, message),
    receive {Ref, aborted} -> ok; {Ref, M} -> fail("trans on a held lock: ~0tp", [M])
    after ?T -> fail("trans on a held lock: no answer", []) end,
    no_more(Ref, 200),
    step("global_del_lock: each other's"),
    true = g({global_del_lock, {ctl_lk2, a}, [?CN]}),
    true = r({global_del_lock, {ctl_lk1, a}, default}),
    true = both({global_set_lock, {ctl_lk3, a}, default, 0}),
    true = both({global_del_lock, {ctl_lk3, a}, default}),
    step("global_trans on a free resource: the call gets done; the message form in_trans, then done"),
    done = g({global_trans, {ctl_lk1, b}, default, 0}),
    Ref2 = make_ref(),
    {cnode_ctl, ?CN} ! {self(), Ref2, {global_trans, {ctl_lk1, b}, default, 0}},
    receive {Ref2, in_trans} -> ok; {Ref2, M2} -> fail("trans: ~0tp before in_trans", [M2])
    after ?T -> fail("trans: no in_trans", []) end,
    receive {Ref2, done} -> ok; {Ref2, M3} -> fail("trans: ~0tp after in_trans", [M3])
    after ?T -> fail("trans: no done", []) end,
    no_more(Ref2, 200),
    true = both({global_set_lock, {ctl_lk1, c}, default, 0}),
    true = both({global_del_lock, {ctl_lk1, c}, default}),
    step("bad arguments"),
    {error, _} = both({global_set_lock, ctl_lk4, not_nodes, 0}),
    {error, _} = both({global_register, ctl_g3, not_a_pid}),
    {error, _} = both(global_nonesuch),
    [exit(P, kill) || P <- [P1, P2]], % C gen_servers take no system messages, so no gen_server:stop
    ok.

t_crdt() ->
    main_cnode(),
    step("not started"),
    {error, not_started} = both({crdt_read, ctl_nocrdt}),
    {error, badarg} = both({crdt_read, "no atom"}),
    step("crdt_start: one each way, then each other's name"),
    ok = g({crdt_start, ctl_c1, [{sync_interval, 50}]}),
    ok = r({crdt_start, ctl_c2, [{sync_interval, 50}]}),
    {error, already_started} = g({crdt_start, ctl_c2, []}),
    {error, already_started} = r({crdt_start, ctl_c1, []}),
    {error, badarg} = both({crdt_start, ctl_c3, [{bogus, 1}]}),
    step("crdt_put, crdt_delete"),
    ok = g({crdt_put, ctl_c1, k1, {v, call}}),
    ok = r({crdt_put, ctl_c1, k2, {v, message}}),
    ok = g({crdt_put, ctl_c1, k3, gone}),
    ok = r({crdt_delete, ctl_c1, k3}),
    ok = g({crdt_put, ctl_c1, k4, gone}),
    ok = g({crdt_delete, ctl_c1, k4}),
    step("crdt_read, crdt_root, crdt_stats"),
    Want = #{k1 => {v, call}, k2 => {v, message}},
    Want = both({crdt_read, ctl_c1}),
    #{} = both({crdt_read, ctl_c2}),
    <<_:32>> = both({crdt_root, ctl_c1}),
    #{keys := 2} = both_like({crdt_stats, ctl_c1}),
    step("crdt_set_neighbours: each way one direction; the two converge"),
    ok = g({crdt_set_neighbours, ctl_c1, [{ctl_c2, ?CN}]}),
    ok = r({crdt_set_neighbours, ctl_c2, [{ctl_c1, ?CN}]}),
    {error, _} = both({crdt_set_neighbours, ctl_c1, [not_a_pair]}),
    wait_until(fun() -> g({crdt_read, ctl_c2}) =:= Want andalso r({crdt_root, ctl_c2}) =:= g({crdt_root, ctl_c1}) end,
               5000, "converged") orelse fail("ctl_c2 did not converge to ctl_c1: ~0tp", [r({crdt_read, ctl_c2})]),
    ok.

t_horde_registry() ->
    main_cnode(),
    step("no such registry"),
    {error, no_such_registry} = both({horde_members, 'Elixir.NoSuch.Registry'}),
    step("horde_members"),
    Members = both({horde_members, ?REG}),
    lists:member({?REG, ?CN}, Members) orelse fail("members ~0tp lack the C node", [Members]),
    Members = both({horde_members, 'MyApp.Registry'}), % as Elixir writes it
    step("horde_register: one each way, then each other's key"),
    {ok, P1} = g({horde_register, ?REG, {ctl, call}, v1}),
    {ok, P2} = r({horde_register, ?REG, {ctl, message}, v2}),
    {error, {already_registered, P2}} = g({horde_register, ?REG, {ctl, message}, v3}),
    {error, {already_registered, P1}} = r({horde_register, ?REG, {ctl, call}, v3}),
    step("horde_lookup (answered once the registry process answered)"),
    L1 = both({horde_lookup, ?REG, {ctl, call}}),
    L2 = both({horde_lookup, ?REG, {ctl, message}}),
    [] = both({horde_lookup, ?REG, {ctl, nobody}}),
    info("lookups: ~0tp, ~0tp", [L1, L2]),
    true = lists:member(P1, lookup_pids(L1)) andalso lists:member(P2, lookup_pids(L2)),
    step("horde_unregister: each way one key"),
    ok = g({horde_unregister, ?REG, {ctl, message}}),
    ok = r({horde_unregister, ?REG, {ctl, call}}),
    [] = both({horde_lookup, ?REG, {ctl, call}}),
    [] = both({horde_lookup, ?REG, {ctl, message}}),
    ok = both({horde_unregister, ?REG, {ctl, nobody}}),
    {error, badarg} = both({horde_lookup, ?REG}),
    ok.

lookup_pids(L) when is_list(L) -> [P || {P, _} <- L];
lookup_pids(Other) -> fail("lookup answered ~0tp", [Other]).

spec(Id) -> spec(Id, ?COUNTER).
spec(Id, Mod) -> #{id => Id, start => {Mod, start_link, [[Id]]}, restart => temporary, cnode => true}.

t_horde_supervisor() ->
    main_cnode(),
    step("no such supervisor"),
    {error, no_such_supervisor} = both({horde_sup_count, 'Elixir.NoSuch.Sup'}),
    {error, no_such_supervisor} = both({horde_sup_which_children, 'NoSuch.Sup'}),
    step("horde_sup_count, horde_sup_which_children before"),
    C0 = both({horde_sup_count, ?SUP}),
    W0 = both({horde_sup_which_children, ?SUP}),
    step("horde_sup_start_child: one each way"),
    {ok, P1} = g({horde_sup_start_child, ?SUP, spec(1001)}),
    {ok, P2} = r({horde_sup_start_child, ?SUP, spec(1002)}),
    1001 = gen_server:call(P1, get, ?T),
    1002 = gen_server:call(P2, get, ?T),
    E = both({horde_sup_start_child, ?SUP, spec(1003, 'Elixir.NoSuch.Worker')}),
    info("start_child of an unknown C module: ~0tp", [E]),
    {error, _} = E,
    {error, badarg} = both({horde_sup_start_child, ?SUP}),
    step("horde_sup_count, horde_sup_which_children after"),
    W1 = both({horde_sup_which_children, ?SUP}),
    length(W1) =:= length(W0) + 2 orelse fail("which_children ~0tp after two starts (before ~0tp)", [W1, W0]),
    [true = lists:keymember(P, 2, W1) || P <- [P1, P2]],
    C1 = both({horde_sup_count, ?SUP}),
    info("count before ~0tp, after ~0tp", [C0, C1]),
    C0 =/= C1 orelse fail("count did not change: ~0tp", [C1]),
    ok.

%% cnode_c2 joins MyApp.Sup; children started through cnode_c1 that cnode_c2 owns are proxied there, and
%% cnode_c2 answers the caller itself: the gen_server caller through its alias, the other form with {Ref, Reply}.
t_horde_sup_proxied() ->
    main_cnode(),
    {_H2, _} = start_cnode("cnode_c2", ?CN2_NAME, ["--horde-supervisor", "MyApp.Sup"]),
    step("cnode_c1 connects to cnode_c2"),
    ok = r({send, {nobody_here, ?CN2}, hello}),
    wait_until(fun() -> lists:member(?CN2, r(nodes)) end, 5000, "connected")
        orelse fail("cnode_c1 did not connect to cnode_c2", []),
    step("start children through cnode_c1 until one runs on cnode_c2, by call"),
    Ids = counter(2000),
    OnC2 = fun(Ask) ->
                   fun() ->
                           Id = Ids(),
                           case Ask({horde_sup_start_child, ?SUP, spec(Id)}) of
                               {ok, P} when node(P) =:= ?CN2 -> Id = gen_server:call(P, get, ?T), true;
                               {ok, P} when node(P) =:= ?CN -> false;
                               Other -> fail("start_child ~b answered ~0tp", [Id, Other])
                           end
                   end
           end,
    wait_until(OnC2(fun g/1), 15000, "call") orelse fail("no child started by call ran on cnode_c2", []),
    step("the same by {From, Ref, Cmd}"),
    wait_until(OnC2(fun r/1), 15000, "message") orelse fail("no child started by message ran on cnode_c2", []),
    info("~b children started", [Ids() - 2000]),
    ok.

counter(From) ->
    C = atomics:new(1, []),
    atomics:put(C, 1, From),
    fun() -> atomics:add_get(C, 1, 1) end.

%% Elixir's own GenServer.call, from a hidden elixir node; it sends what it got back to us.
t_elixir() ->
    main_cnode(),
    register(ctl_sink, self()),
    Code = "n = :\"" ++ ?CN_NAME ++ "\"; "
           "r = [GenServer.call({:cnode_ctl, n}, :nodes), "
           "GenServer.call({:cnode_ctl, n}, {:start_kv, :ctl_ex_kv}), "
           "GenServer.call({:cnode_ctl, n}, {:crdt_read, :ctl_nocrdt}), "
           "GenServer.call({:cnode_ctl, n}, {:horde_lookup, MyApp.Registry, {:ctl, :ex}}), "
           "GenServer.call({:cnode_ctl, n}, {:global_whereis, :ctl_nobody})]; "
           "me = :\"ct@127.0.0.1\"; true = Node.connect(me); "
           "send({:ctl_sink, me}, {:ex, r}); "
           %% an erpc round trip on the same connection: the answers were delivered before elixir halts
           "^me = :erpc.call(me, :erlang, :node, []); "
           "IO.puts(\"EX_DONE\")",
    H = start_elixir("ctl_ex", ["--erl", "-hidden", "-e", Code], []),
    receive
        {ex, [Nodes, {ok, Kv}, {error, not_started}, [], undefined]} when is_list(Nodes), is_pid(Kv) ->
            lists:member('ctl_ex@127.0.0.1', Nodes) orelse fail("nodes ~0tp lack the elixir node", [Nodes]),
            ok;
        {ex, Other} -> fail("GenServer.call from Elixir answered ~0tp", [Other])
    after 30000 -> fail("no answers from elixir: ~ts", [tail(H, 8)])
    end,
    wait_exit(H, 10000),
    ok.

%% Issue 18: the shared C node runs without --otp-release, and this node is the first BEAM peer it met (hidden
%% peers count), so it follows this node's release: its cnode_kv keeps 0.0 and -0.0 apart from OTP 27 on
%% (put(0.0, pos), put(-0.0, neg), get(0.0) is {ok, pos}, as an OTP 27+ map), and not on 25 ({ok, neg}). A second
%% C node started with the other side's --otp-release follows that release, whoever meets it.
t_otp_release() ->
    main_cnode(),
    Rel = list_to_integer(erlang:system_info(otp_release)),
    step(lists:flatten(io_lib:format("cnode_ctl otp_release: learned OTP ~b from this node", [Rel]))),
    wait_until(fun() -> r(otp_release) =:= {Rel, known} end, 10000, "learned")
        orelse fail("otp_release answers ~0tp, want {~b, known}", [r(otp_release), Rel]),
    {Rel, known} = both(otp_release),
    kv_zeros(?CN, Rel),
    Other = case Rel >= 27 of true -> 25; false -> 27 end,
    Cn3 = 'cnode_c3@127.0.0.1',
    {_H3, _} = start_cnode("cnode_c3", atom_to_list(Cn3), ["--otp-release", integer_to_list(Other)]),
    step(lists:flatten(io_lib:format("cnode_c3 started with --otp-release ~b", [Other]))),
    expect({Other, known}, r(Cn3, otp_release), "cnode_c3's otp_release"),
    kv_zeros(Cn3, Other).

%% put(0.0, pos), put(-0.0, neg), then get(0.0) and get(-0.0) from cnode_kv on Node, which follows release Rel.
%% -0.0 is made at run time: OTP 25's compiler keeps one of the literals 0.0 and -0.0 (they are =:= there).
kv_zeros(Node, Rel) ->
    Kv = {cnode_kv, Node},
    Neg = binary_to_term(<<131, 70, 16#80, 0:56>>),
    ok = gen_server:call(Kv, {put, 0.0, pos}, ?T),
    ok = gen_server:call(Kv, {put, Neg, neg}, ?T),
    Got = {gen_server:call(Kv, {get, 0.0}, ?T), gen_server:call(Kv, {get, Neg}, ?T)},
    Want = case Rel >= 27 of true -> {{ok, pos}, {ok, neg}}; false -> {{ok, neg}, {ok, neg}} end,
    info("~ts (OTP ~b): get(0.0), get(-0.0) -> ~0tp", [Node, Rel, Got]),
    expect(Want, Got, io_lib:format("cnode_kv on ~ts following OTP ~b", [Node, Rel])).

t_every_command() ->
    Missing = [{Op, Form} || Op <- ?ALL, Form <- [call, message], ets:lookup(interop, {ctl_called, Op, Form}) =:= []],
    Missing =:= [] orelse fail("not called: ~0tp", [Missing]),
    info("~b commands, each called both ways", [length(?ALL)]).

%% SIGINT with commands' state still held (a lock, CRDTs, Horde children): the node stops and exits 0, so under
%% ASan (interop/run_san.sh) its leak check runs on everything the commands kept; a KILL at the end would skip it.
t_stop() ->
    H = main_cnode(),
    true = g({global_set_lock, {ctl_held, a}, default, 0}),
    Ref = make_ref(),
    {cnode_ctl, ?CN} ! {self(), Ref, {horde_lookup, ?REG, {ctl, last}}},
    interop_lib:signal(H, "INT"),
    case wait_exit(H, 15000) of
        {ok, 0} -> ok;
        Other -> fail("cnode_c1 after SIGINT: ~0tp; log: ~ts", [Other, tail(H, 8)])
    end.
