#!/usr/bin/env escript
%%! -hidden -connect_all false
%% Interop tests of Phoenix.PubSub on the C node (otp/pubsub.c): build/cnode --pubsub MyApp.PubSub --pubsub
%% Pool4.PubSub against two elixir nodes running interop/pubsub_standin.ex (our stand-in of Phoenix.PubSub's PG2
%% adapter; MyApp.PubSub with pool_size 1, Pool4.PubSub with 4). Run by interop/run.sh with --cnode BIN --repo DIR
%% --build DIR --epmd-port P --free-port P2 --tmp DIR --pidfile F [test...] and ERL_EPMD_PORT=P. This node
%% (pss@127.0.0.1) is hidden: it drives the stand-ins with erpc (subscribers are PubSubStandin.Probe processes)
%% and the C node through cnode_ctl (pubsub_* commands; C subscribers are recorders). Output: `ok name` /
%% `FAIL name: reason`, then `pubsub_suite: N passed, N failed`.
-mode(compile).
-export([main/1]).

-import(interop_lib, [cfg/1, info/2, step/1, fail/2, now_ms/0, start_cnode/3, start_elixir/3, wait_line/4, tail/2,
                      status/1, ctl/3, wait_until/3]).

-define(CN, 'pscn@127.0.0.1').
-define(T, 5000).
-define(SI, 'Elixir.PubSubStandin').
-define(PROBE, 'Elixir.PubSubStandin.Probe').
-define(P1, 'Elixir.MyApp.PubSub').
-define(P4, 'Elixir.Pool4.PubSub').
%% How long a test waits to be sure nothing more arrives.
-define(QUIET_MS, 300).

tests() ->
    [{echo_subscriber, 30, fun t_echo/0},
     {beam_broadcast_reaches_c, 20, fun t_beam_to_c/0},
     {c_broadcast_reaches_all, 20, fun t_c_to_all/0},
     {pool_size_4, 20, fun t_pool4/0},
     {direct_broadcast, 20, fun t_direct/0},
     {broadcast_from, 20, fun t_from/0},
     {local_broadcast_and_unsubscribe, 20, fun t_local_unsub/0},
     {custom_dispatcher, 20, fun t_dispatcher/0},
     {ctl_both_forms, 20, fun t_ctl_forms/0}].

main(Args) ->
    Tmp = arg_value("--tmp", Args),
    Here = filename:dirname(escript:script_name()),
    case Tmp =/= undefined andalso compile:file(filename:join(Here, "interop_lib.erl"), [{outdir, Tmp}, return_errors]) of
        {ok, _} -> true = code:add_patha(Tmp);
        Err -> setup_failed("cannot compile the harness into ~p: ~p", [Tmp, Err])
    end,
    Ex = filename:join(Here, "pubsub_standin.ex"),
    Out = os:cmd(lists:flatten(io_lib:format("elixirc -o '~ts' '~ts' 2>&1; echo \"rc=$?\"", [Tmp, Ex]))),
    lists:suffix("rc=0\n", Out) orelse setup_failed("elixirc ~ts failed: ~ts", [Ex, Out]),
    interop_lib:main(Args, "pubsub_suite", tests(),
                     #{node => 'pss@127.0.0.1', budget_ms => 110000, fail_logs => ["cnode", "elixir"]}).

setup_failed(F, A) ->
    io:format("FAIL setup: " ++ F ++ "~npubsub_suite: 0 passed, 1 failed~n", A),
    halt(1).

arg_value(_, []) -> undefined;
arg_value(K, [K, V | _]) -> V;
arg_value(K, [_ | T]) -> arg_value(K, T).

%% ---------------------------------------------------------------------------------------------------------
%% the nodes: stand-ins pe1, pe2 and the C node pscn (suite scope), all connected

elixirs() -> ['pe1@127.0.0.1', 'pe2@127.0.0.1'].

in_suite_scope(F) ->
    Scope = get(scope),
    put(scope, suite),
    try F() after put(scope, Scope) end.

cluster() ->
    [standin(E) || E <- elixirs()],
    case persistent_term:get(pscn, undefined) =/= undefined andalso status(persistent_term:get(pscn)) of
        running -> ok;
        _ -> persistent_term:put(pscn, in_suite_scope(fun start_c/0))
    end,
    [E1, E2] = elixirs(),
    true = rpc(E1, net_kernel, connect_node, [E2]),
    [true = rpc(E, net_kernel, connect_node, [?CN]) || E <- elixirs()],
    %% the C node runs all four shards of Pool4 (learned from the peers) and is in every shard group
    wait_for("the C node in every shard group on both stand-ins", ?T,
             fun() -> lists:all(fun(E) -> c_in_groups(E) end, elixirs()) end).

c_in_groups(E) ->
    Groups = rpc(E, ?SI, shards, [?P1]) ++ rpc(E, ?SI, shards, [?P4]),
    lists:all(fun(G) -> lists:any(fun(P) -> node(P) =:= ?CN end,
                                  rpc(E, pg, get_members, ['Elixir.Phoenix.PubSub', G])) end, Groups).

standin(E) ->
    case persistent_term:get({standin, E}, undefined) =/= undefined andalso status(persistent_term:get({standin, E})) of
        running -> ok;
        _ ->
            Short = hd(string:split(atom_to_list(E), "@")),
            Code = "PubSubStandin.serve([[name: MyApp.PubSub], [name: Pool4.PubSub, pool_size: 4]])",
            H = in_suite_scope(fun() -> start_elixir(Short, ["-pa", cfg(tmp), "-e", Code], []) end),
            case wait_line(H, "STANDIN_READY", 0, 20000) of
                {ok, _} -> ok;
                R -> fail("stand-in ~ts did not start (~p): ~ts", [Short, R, tail(H, 8)])
            end,
            true = net_kernel:connect_node(E),
            persistent_term:put({standin, E}, H)
    end.

start_c() ->
    {H, _} = start_cnode("cnode_ps", atom_to_list(?CN), ["--pubsub", "MyApp.PubSub", "--pubsub", "Pool4.PubSub"]),
    case wait_line(H, "joined Phoenix.PubSub Elixir.Pool4.PubSub", 0, 5000) of
        {ok, _} -> H;
        R -> fail("the C node did not join the pubsubs (~p): ~ts", [R, tail(H, 8)])
    end.

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

%% Subscribers: {e, Node, Probe} on a stand-in, {c, Recorder} on the C node.
sub(E, PS, Topic) when E =/= c -> {e, E, rpc(E, ?PROBE, start, [PS, Topic])};
sub(c, PS, Topic) ->
    case c({pubsub_subscribe, PS, Topic}) of
        {ok, R} -> {c, R};
        Other -> fail("pubsub_subscribe gave ~0tp", [Other])
    end.

got({e, E, P}) -> rpc(E, ?PROBE, received, [P]);
got({c, R}) -> c({pubsub_received, R}).

%% Each subscriber gets exactly Msgs (in this order) and nothing more (a failure names what each one got).
expect(What, Subs, Msgs) ->
    wait_until(fun() -> lists:all(fun(S) -> got(S) =:= Msgs end, Subs) end, ?T, What),
    timer:sleep(?QUIET_MS),
    [got(S) =:= Msgs orelse fail("~ts: ~p got ~0tp, not ~0tp", [What, S, got(S), Msgs]) || S <- Subs],
    ok.

%% The same, in any order: messages that went through different shards may arrive interleaved (as in Phoenix).
expect_any_order(What, Subs, Msgs) ->
    Want = lists:sort(Msgs),
    wait_until(fun() -> lists:all(fun(S) -> lists:sort(got(S)) =:= Want end, Subs) end, ?T, What),
    timer:sleep(?QUIET_MS),
    [lists:sort(got(S)) =:= Want orelse fail("~ts: ~p got ~0tp", [What, S, got(S)]) || S <- Subs],
    ok.

uniq(Name) -> iolist_to_binary(io_lib:format("~ts:~b", [Name, erlang:unique_integer([positive])])).

%% ---------------------------------------------------------------------------------------------------------
%% tests

t_echo() ->
    cluster(),
    [E1, E2] = elixirs(),
    step("a subscriber of \"cnode:echo:reply\" on pe2; pe1 broadcasts on \"cnode:echo\""),
    S = sub(E2, ?P1, <<"cnode:echo:reply">>),
    ok = rpc(E1, ?SI, broadcast, [?P1, <<"cnode:echo">>, {hello, 1}]),
    expect("{echo, C, Msg} on pe2", [S], [{echo, ?CN, {hello, 1}}]),
    ok.

t_beam_to_c() ->
    cluster(),
    [E1, E2] = elixirs(),
    T = uniq("b2c"),
    Subs = [sub(c, ?P1, T), sub(c, ?P1, T), sub(E1, ?P1, T), sub(E2, ?P1, T)],
    step("pe1 broadcasts twice; every subscriber (two on the C node) gets both, once each"),
    ok = rpc(E1, ?SI, broadcast, [?P1, T, #{n => 1, s => <<"x">>}]),
    ok = rpc(E1, ?SI, broadcast, [?P1, T, [two]]),
    expect("both messages everywhere", Subs, [#{n => 1, s => <<"x">>}, [two]]),
    ok.

t_c_to_all() ->
    cluster(),
    [E1, E2] = elixirs(),
    T = uniq("c2all"),
    Subs = [sub(c, ?P1, T), sub(E1, ?P1, T), sub(E1, ?P1, T), sub(E2, ?P1, T)],
    step("the C node broadcasts; C and Elixir subscribers get it once"),
    ok = c({pubsub_broadcast, ?P1, T, {from_c, 1}}),
    expect("the C broadcast everywhere", Subs, [{from_c, 1}]),
    {error, no_such_pubsub} = c({pubsub_broadcast, 'Elixir.Nope.PubSub', T, x}),
    ok.

t_pool4() ->
    cluster(),
    [E1, E2] = elixirs(),
    4 = length(rpc(E1, ?SI, shards, [?P4])),
    T = uniq("pool4"),
    Subs = [sub(c, ?P4, T), sub(E2, ?P4, T)],
    step("pe1 broadcasts 20 messages, each from a new process (so through every shard)"),
    Msgs = [{m, I} || I <- lists:seq(1, 20)],
    [ok = rpc(E1, ?SI, broadcast, [?P4, T, M]) || M <- Msgs],
    expect_any_order("all 20 at the C subscriber and at pe2", Subs, Msgs),
    step("the C node broadcasts 20 from different C subscribers (broadcast_from: through every shard)"),
    Froms = [R || _ <- lists:seq(1, 5), {c, R} <- [sub(c, ?P4, uniq("other"))]],
    T2 = uniq("pool4c"),
    Subs2 = [sub(E1, ?P4, T2), sub(E2, ?P4, T2)],
    [ok = c({pubsub_broadcast_from, ?P4, lists:nth(1 + I rem 5, Froms), T2, {c, I}}) || I <- lists:seq(1, 20)],
    expect_any_order("all 20 on pe1 and pe2", Subs2, [{c, I} || I <- lists:seq(1, 20)]),
    ok.

t_direct() ->
    cluster(),
    [E1, E2] = elixirs(),
    T = uniq("direct"),
    C = sub(c, ?P1, T),
    S1 = sub(E1, ?P1, T),
    S2 = sub(E2, ?P1, T),
    step("pe1 direct_broadcasts to the C node only"),
    ok = rpc(E1, ?SI, direct_broadcast, [?CN, ?P1, T, to_c]),
    expect("only the C subscriber", [C], [to_c]),
    expect("not the others", [S1, S2], []),
    step("the C node direct_broadcasts to pe2 only"),
    ok = c({pubsub_direct_broadcast, ?P1, E2, T, to_pe2}),
    expect("only pe2", [S2], [to_pe2]),
    expect("not pe1 nor C", [S1], []),
    expect("C still one", [C], [to_c]),
    ok.

t_from() ->
    cluster(),
    [E1, E2] = elixirs(),
    T = uniq("from"),
    {e, _, P1} = A1 = sub(E1, ?P1, T),
    B1 = sub(E1, ?P1, T),
    C1 = sub(c, ?P1, T),
    {c, R2} = C2 = sub(c, ?P1, T),
    S2 = sub(E2, ?P1, T),
    step("pe1 broadcast_from a subscriber: all but that one"),
    ok = rpc(E1, ?SI, broadcast_from, [?P1, P1, T, m1]),
    expect("all but the sender", [B1, C1, C2, S2], [m1]),
    expect("not the sender", [A1], []),
    step("the C node broadcast_from a C subscriber"),
    ok = c({pubsub_broadcast_from, ?P1, R2, T, m2}),
    expect("all but the C sender", [A1], [m2]),
    expect("all but the C sender (2)", [B1, C1, S2], [m1, m2]),
    expect("not the C sender", [C2], [m1]),
    ok.

t_local_unsub() ->
    cluster(),
    [E1, _] = elixirs(),
    T = uniq("local"),
    {c, R} = C = sub(c, ?P1, T),
    S = sub(E1, ?P1, T),
    step("local_broadcast on the C node reaches its own subscribers only"),
    ok = c({pubsub_local_broadcast, ?P1, T, here}),
    expect("the C subscriber", [C], [here]),
    expect("not pe1", [S], []),
    step("after unsubscribe the C subscriber gets nothing more"),
    ok = c({pubsub_unsubscribe, ?P1, T, R}),
    ok = rpc(E1, ?SI, broadcast, [?P1, T, after_unsub]),
    expect("pe1 gets it", [S], [after_unsub]),
    expect("C does not", [C], [here]),
    ok.

t_dispatcher() ->
    cluster(),
    [E1, E2] = elixirs(),
    T = uniq("disp"),
    C = sub(c, ?P1, T),
    S = sub(E2, ?P1, T),
    step("a broadcast with another dispatcher: pe2 runs it, the C subscriber gets the message itself"),
    ok = rpc(E1, ?SI, broadcast, [?P1, T, m, 'Elixir.PubSubStandin.Tagging']),
    expect("pe2's dispatcher tagged it", [S], [{tagged, m}]),
    expect("the C subscriber got the message", [C], [m]),
    ok.

%% The pubsub_* commands as gen_server calls give what the {From, Ref, Cmd} form gives.
t_ctl_forms() ->
    cluster(),
    [E1, _] = elixirs(),
    G = fun(Req) -> gen_server:call({cnode_ctl, ?CN}, Req, ?T) end,
    T = uniq("forms"),
    {ok, R} = G({pubsub_subscribe, ?P1, T}),
    ok = G({pubsub_broadcast, ?P1, T, via_call}),
    ok = rpc(E1, ?SI, broadcast, [?P1, T, via_beam]),
    wait_for("both at the recorder", ?T, fun() -> G({pubsub_received, R}) =:= [via_call, via_beam] end),
    [via_call, via_beam] = c({pubsub_received, R}),
    {error, no_such_pubsub} = G({pubsub_subscribe, 'Elixir.Nope.PubSub', T}),
    {error, badarg} = G({pubsub_broadcast, ?P1, not_a_binary, x}),
    ok.
