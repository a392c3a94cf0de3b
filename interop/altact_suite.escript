#!/usr/bin/env escript
%%! -connect_all false
%% Interop tests of OTP 28's alternative-action signals (ALTACT_SIG_SEND) and EEP 76's priority messages between
%% build/cnode and the OTP this escript runs on. Needs OTP 28 or later: on older releases (no alias/1 priority,
%% no send/3 priority, no ALTACT_SIG) the suite prints why it skips and `altact_suite: 0 passed, 0 failed`.
%% Run by interop/run.sh after suite.escript with --cnode BIN --repo DIR --build DIR --epmd-port P --free-port P2
%% --tmp DIR --pidfile F and ERL_EPMD_PORT=P; the harness is interop/interop_lib.erl. This node is a@127.0.0.1;
%% the shared cnode is acnode@127.0.0.1, driven through puppets (cnode_demo:puppet/1, see proc_suite).
-mode(compile).

-import(interop_lib, [info/2, step/1, fail/2, now_ms/0, main_cnode/0]).

-define(CN_NAME, "acnode@127.0.0.1").
-define(CN, 'acnode@127.0.0.1').
-define(T, 5000).
-define(FLOOD, 1000).

tests() ->
    [{priority_to_c_alias, 20, fun t_priority_to_c_alias/0},
     {priority_ahead_of_1000, 40, fun t_priority_ahead/0},
     {priority_from_c, 20, fun t_priority_from_c/0},
     {gen_call_reply_by_alias, 20, fun t_gen_call_reply_by_alias/0},
     {c_calls_beam_reply_by_alias, 20, fun t_c_calls_beam/0}].

main(Args) ->
    Rel = list_to_integer(erlang:system_info(otp_release)),
    case Rel >= 28 of
        false ->
            io:format("altact_suite: skipped: OTP ~b has no ALTACT_SIG_SEND or priority messages (OTP 28+)~n"
                      "altact_suite: 0 passed, 0 failed~n", [Rel]),
            halt(0);
        true -> ok
    end,
    Tmp = arg_value("--tmp", Args),
    Lib = filename:join(filename:dirname(escript:script_name()), "interop_lib.erl"),
    case Tmp =/= undefined andalso compile:file(Lib, [{outdir, Tmp}, return_errors]) of
        {ok, _} -> true = code:add_patha(Tmp);
        Err -> io:format("FAIL setup: cannot compile ~ts into ~p: ~p~naltact_suite: 0 passed, 1 failed~n",
                         [Lib, Tmp, Err]),
               halt(1)
    end,
    interop_lib:main(Args, "altact_suite", tests(),
                     #{node => 'a@127.0.0.1', budget_ms => 100000, shared_cnode => ?CN_NAME,
                       shared_cnode_proc => "cnode_a", fail_logs => ["cnode"]}).

arg_value(_, []) -> undefined;
arg_value(K, [K, V | _]) -> V;
arg_value(K, [_ | T]) -> arg_value(K, T).

%% ---- puppets ----------------------------------------------------------------------------------------------

puppet() ->
    main_cnode(),
    P = spawn(?CN, cnode_demo, puppet, [self()]),
    node(P) =:= ?CN orelse fail("spawn(~ts, cnode_demo, puppet, _) gave ~p", [?CN, P]),
    P.

cmd(P, Cmd) -> P ! {'$puppet', Cmd}, ok.

pmsg(P, What) ->
    receive {puppet, P, M} -> M
    after ?T -> fail("puppet ~p: no message within ~b ms while waiting for ~ts", [P, ?T, What])
    end.

palias(P, Opts) ->
    cmd(P, {alias, Opts}),
    case pmsg(P, "{alias, A}") of
        {alias, A} when is_reference(A) -> A;
        Other -> fail("puppet {alias, ~p} answered ~p", [Opts, Other])
    end.

%% ---- tests --------------------------------------------------------------------------------------------------

%% erlang:send(Alias, Msg, [priority]) and exit(Alias, Reason, [priority]) to a C process's priority alias.
t_priority_to_c_alias() ->
    P = puppet(),
    A = palias(P, [priority]),
    step("send/3 with [priority] to the C priority alias"),
    ok = erlang:send(A, hello_prio, [priority]),
    hello_prio = pmsg(P, "hello_prio"),
    step("exit/3 with [priority] to the alias of a C process that traps exits"),
    cmd(P, {trap_exit, true}),
    cmd(P, ping), % the flag is set when the puppet runs the command; exit signals act on arrival
    pong = pmsg(P, "pong"),
    true = apply(erlang, exit, [A, why, [priority]]), % exit/3 is OTP 28+: no compile-time reference
    case pmsg(P, "'EXIT'") of
        {'EXIT', Self, why} when Self =:= self() -> ok;
        X -> fail("exit/3 through the alias gave ~p", [X])
    end,
    cmd(P, {unalias, A}),
    cmd(P, ping), % the alias goes when the puppet runs the command; alias messages act on arrival
    pong = pmsg(P, "pong"),
    ok = erlang:send(A, after_unalias, [priority]),
    cmd(P, ping),
    case pmsg(P, "pong") of
        pong -> ok;
        Y -> fail("a message to an inactive alias arrived: ~p", [Y])
    end.

%% The acceptance test: while the C process is busy, 1,000 ordinary messages and then one priority message
%% reach it; the priority message is handled first.
t_priority_ahead() ->
    P = puppet(),
    A = palias(P, [priority]),
    step("blocking the C node 1 s, then 1,000 ordinary messages and one priority message"),
    cmd(P, {sleep, 1000}),
    timer:sleep(200),
    [P ! {ordinary, I} || I <- lists:seq(1, ?FLOOD)],
    ok = erlang:send(A, prio, [priority]),
    Got = collect(P, ?FLOOD + 1, []),
    Pos = length(lists:takewhile(fun(M) -> M =/= prio end, Got)),
    info("altact_suite: the priority message came at position ~b of ~b", [Pos, ?FLOOD + 1]),
    Pos =:= 0 orelse fail("the priority message came at position ~b, after ~p", [Pos, lists:sublist(Got, 5)]),
    Ordinary = [I || {ordinary, I} <- Got],
    Ordinary =:= lists:seq(1, ?FLOOD) orelse fail("ordinary messages out of order", []).

collect(_, 0, Acc) -> lists:reverse(Acc);
collect(P, N, Acc) -> collect(P, N - 1, [pmsg(P, "the flood") | Acc]).

%% A C process sends priority messages to a BEAM priority alias: they overtake the ordinary ones queued there.
t_priority_from_c() ->
    P = puppet(),
    Self = self(),
    B = spawn_link(fun() ->
                           A = alias([priority]),
                           Self ! {alias, A},
                           receive go -> ok end,
                           %% Once all 51 arrived, the queue in order: the priority one first (go is taken).
                           wait_len(51),
                           {messages, Ms} = process_info(self(), messages),
                           Self ! {order, Ms}
                   end),
    A = receive {alias, X} -> X after ?T -> fail("no alias from the BEAM process", []) end,
    [cmd(P, {send, A, {ordinary, I}}) || I <- lists:seq(1, 50)],
    cmd(P, {send, A, prio_from_c, [priority]}),
    B ! go,
    receive
        {order, [prio_from_c | Rest]} ->
            length(Rest) =:= 50 orelse fail("~b ordinary messages after the priority one", [length(Rest)]);
        {order, Ms} -> fail("queue order at the BEAM alias: ~p", [lists:sublist(Ms, 4)])
    after ?T -> fail("the BEAM process did not report its queue", [])
    end.

wait_len(N) ->
    case process_info(self(), message_queue_len) of
        {message_queue_len, L} when L >= N -> ok;
        _ -> timer:sleep(10), wait_len(N)
    end.

%% OTP 28+'s gen_server:call tags with [alias | Ref]; the C gen_server replies through the alias by ALTACT.
t_gen_call_reply_by_alias() ->
    main_cnode(),
    step("gen_server:call to the C gen_server cnode_kv"),
    ok = gen_server:call({cnode_kv, ?CN}, {put, altact, yes}, ?T),
    {ok, yes} = gen_server:call({cnode_kv, ?CN}, {get, altact}, ?T),
    T0 = now_ms(),
    [ok = gen_server:call({cnode_kv, ?CN}, {put, I, I}, ?T) || I <- lists:seq(1, 200)],
    info("altact_suite: 200 calls in ~b ms", [now_ms() - T0]),
    ok.

%% A C process calls a BEAM server that answers with gen:reply/2: the reply comes by ALTACT to the C alias.
t_c_calls_beam() ->
    P = puppet(),
    S = spawn_link(fun Loop() ->
                           receive
                               {'$gen_call', From, Req} -> gen:reply(From, {echoed, Req}), Loop()
                           end
                   end),
    cmd(P, {call, S, hello, ?T}),
    case pmsg(P, "call result") of
        {result, ok, {echoed, hello}} -> ok;
        X -> fail("cn_call to a BEAM server gave ~p", [X])
    end,
    unlink(S),
    exit(S, kill),
    ok.
