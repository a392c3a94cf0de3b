#!/usr/bin/env escript
%%! -noinput
%% Where cnode listens (issue 16): --listen-addr as erl's -kernel inet_dist_use_interface, --listen-min/--listen-max
%% as inet_dist_listen_min/max, and where the embedded EPMD server binds. Each test reads the listening sockets
%% back with `ss -ltn` (the port of the node's ready line, or the EPMD port) and reaches the node from this erl
%% node (t@127.0.0.1) or an erl peer. Run by interop/run.sh with --cnode BIN --repo DIR --build DIR --epmd-port P
%% --free-port P2 --tmp DIR --pidfile F; every process started is killed by pid after its test.
%% Output: `ok name` / `FAIL name: reason`, then `listen_suite: N passed, N failed`.
-mode(compile).

-import(interop_lib, [cfg/1, info/2, step/1, fail/2, start_ext/4, wait_line/4, wait_exit/2, base_env/0,
                      cnode_cmd/1, tail/2]).

tests() ->
    [{loopback_only, 30, fun t_loopback_only/0, #{shared_cnode => false}},
     {port_range_skips_taken, 30, fun t_port_range/0, #{shared_cnode => false}},
     {port_range_all_taken, 20, fun t_range_all_taken/0, #{shared_cnode => false}},
     {ipv6_loopback, 20, fun t_ipv6_loopback/0, #{shared_cnode => false}},
     {embedded_epmd_follows_listen_addr, 40, fun t_embedded_epmd/0, #{shared_cnode => false}},
     {embedded_epmd_address_env_wins, 20, fun t_epmd_env_wins/0, #{shared_cnode => false}},
     {default_exposure, 20, fun t_default/0, #{shared_cnode => false}}].

main(Args) ->
    Tmp = arg_value("--tmp", Args),
    Here = filename:dirname(escript:script_name()),
    Compiled = [compile:file(filename:join(Here, "interop_lib.erl"), [{outdir, Tmp}, return_errors])
                || Tmp =/= undefined],
    case Tmp =/= undefined andalso lists:all(fun({ok, _}) -> true; (_) -> false end, Compiled) of
        true -> true = code:add_patha(Tmp);
        false -> io:format("FAIL setup: cannot compile the harness into ~p: ~p~nlisten_suite: 0 passed, 1 failed~n",
                           [Tmp, Compiled]),
                 halt(1)
    end,
    case os:find_executable("ss") of
        false -> io:format("FAIL setup: no `ss` (apt-get install iproute2)~nlisten_suite: 0 passed, 1 failed~n"),
                 halt(1);
        _ -> ok
    end,
    interop_lib:main(Args, "listen_suite", tests(), #{budget_ms => 150000, fail_logs => ["cnode", "erl"]}).

arg_value(_, []) -> undefined;
arg_value(K, [K, V | _]) -> V;
arg_value(K, [_ | T]) -> arg_value(K, T).

%% ---- helpers ------------------------------------------------------------------------------------------------

%% The local addresses (as ss prints them: "127.0.0.1:P", "[::1]:P", "*:P", "0.0.0.0:P") of the TCP sockets
%% listening on Port, sorted.
listening(Port) ->
    Out = os:cmd(interop_lib:flat("ss -ltnH 'sport = :~b'", [Port])),
    lists:sort([lists:nth(4, string:lexemes(L, " \t"))
                || L <- string:split(Out, "\n", all), length(string:lexemes(L, " \t")) >= 5]).

expect_listening(Port, Want) ->
    Got = listening(Port),
    info("ss -ltn sport = :~b: ~ts", [Port, lists:join(" ", Got)]),
    Got =:= lists:sort(Want) orelse fail("port ~b: ss shows ~p, want ~p", [Port, Got, Want]).

a(Addr, Port) -> interop_lib:flat("~ts:~b", [Addr, Port]).

%% Starts a cnode with Extra arguments (run.sh's epmd unless Extra says --epmd-port) and Env; waits for its
%% ready line; returns {Handle, DistPort}.
cnode(Proc, Name, Extra, Env) ->
    step("starting " ++ Proc),
    {Exe, Args} = cnode_cmd(["--name", Name, "--cookie", cfg(cookie), "--epmd-port", cfg('epmd-port') | Extra]),
    H = start_ext(Proc, Exe, Args, env(Env)),
    case wait_line(H, "cnode: node " ++ Name ++ " ready", 0, 15000) of
        {ok, Line} ->
            {match, [P]} = re:run(Line, "ready: port (\\d+)", [{capture, all_but_first, list}]),
            {H, list_to_integer(P)};
        R -> fail("~ts did not get ready (~p): ~ts", [Proc, R, tail(H, 5)])
    end.

%% base_env() with Extra's variables instead of its own.
env(Extra) -> Extra ++ [KV || KV = {K, _} <- base_env(), not lists:keymember(K, 1, Extra)].

%% ERL_EPMD_ADDRESS unset, so the cnode's own rule shows.
no_epmd_env() -> [{"ERL_EPMD_ADDRESS", false}].

%% The node answers a BEAM node: ping, echo, and a cnode_kv gen_server call.
reachable(NodeName) ->
    step("ping " ++ NodeName),
    Node = list_to_atom(NodeName),
    pong = net_adm:ping(Node),
    Ref = make_ref(),
    {echo, Node} ! {self(), {hello, Ref}},
    receive {hello, Ref} -> ok after 5000 -> fail("no echo from ~ts", [NodeName]) end,
    ok = gen_server:call({cnode_kv, Node}, {put, listen_key, Ref}, 5000),
    {ok, Ref} = gen_server:call({cnode_kv, Node}, {get, listen_key}, 5000),
    ok.

%% A loopback port P taken by a listening socket of this test's, with P+1 free a moment ago.
taken_pair() -> taken_pair(50).
taken_pair(0) -> fail("no free pair of ports", []);
taken_pair(N) ->
    {ok, S} = gen_tcp:listen(0, [{ip, {127,0,0,1}}, {reuseaddr, false}]),
    {ok, P} = inet:port(S),
    case P < 65535 andalso gen_tcp:listen(P + 1, [{ip, {127,0,0,1}}, {reuseaddr, false}]) of
        {ok, S2} -> gen_tcp:close(S2), {S, P};
        _ -> gen_tcp:close(S), taken_pair(N - 1)
    end.

free_port() ->
    {ok, S} = gen_tcp:listen(0, [{ip, {127,0,0,1}}, {reuseaddr, false}]),
    {ok, P} = inet:port(S),
    gen_tcp:close(S),
    P.

%% ---- tests ------------------------------------------------------------------------------------------------

%% The acceptance check: --listen-addr 127.0.0.1 listens on loopback only, and a local erl reaches the node.
t_loopback_only() ->
    {_, P} = cnode("cnode_lo", "lo1@127.0.0.1", ["--listen-addr", "127.0.0.1"], no_epmd_env()),
    expect_listening(P, [a("127.0.0.1", P)]),
    reachable("lo1@127.0.0.1").

%% --listen-min P --listen-max P+1 with P taken: the node takes P+1 (as inet_dist_listen_min/max), registers
%% it with EPMD, and is reachable there.
t_port_range() ->
    {S, P} = taken_pair(),
    {_, Got} = cnode("cnode_range", "rg1@127.0.0.1",
                     ["--listen-addr", "127.0.0.1", "--listen-min", integer_to_list(P),
                      "--listen-max", integer_to_list(P + 1)], no_epmd_env()),
    Got =:= P + 1 orelse fail("listened on ~b, want ~b (~b is taken)", [Got, P + 1, P]),
    expect_listening(P + 1, [a("127.0.0.1", P + 1)]),
    reachable("rg1@127.0.0.1"),
    gen_tcp:close(S).

%% Every port of the range taken: cnode exits 1 naming the range.
t_range_all_taken() ->
    {S, P} = taken_pair(),
    {ok, S2} = gen_tcp:listen(P + 1, [{ip, {127,0,0,1}}, {reuseaddr, false}]),
    {Exe, Args} = cnode_cmd(["--name", "rg2@127.0.0.1", "--cookie", cfg(cookie), "--epmd-port", cfg('epmd-port'),
                             "--listen-addr", "127.0.0.1", "--listen-min", integer_to_list(P),
                             "--listen-max", integer_to_list(P + 1)]),
    H = start_ext("cnode_full", Exe, Args, env(no_epmd_env())),
    Want = interop_lib:flat("every port of the range ~b-~b is in use", [P, P + 1]),
    case wait_line(H, Want, 0, 10000) of
        {ok, L} -> info("~ts", [L]);
        R -> fail("no '~ts' line (~p): ~ts", [Want, R, tail(H, 5)])
    end,
    case wait_exit(H, 10000) of
        {ok, 1} -> ok;
        Other -> fail("cnode exit: ~p, want status 1", [Other])
    end,
    gen_tcp:close(S),
    gen_tcp:close(S2).

%% --listen-addr ::1: the distribution port is on the IPv6 loopback only.
t_ipv6_loopback() ->
    case gen_tcp:listen(0, [inet6, {ip, {0,0,0,0,0,0,0,1}}]) of
        {ok, S} -> gen_tcp:close(S);
        _ -> fail("no IPv6 loopback on this host", [])
    end,
    {_, P} = cnode("cnode_v6", "v61@127.0.0.1", ["--listen-addr", "::1"], no_epmd_env()),
    expect_listening(P, [a("[::1]", P)]),
    {ok, C} = gen_tcp:connect({0,0,0,0,0,0,0,1}, P, [inet6], 3000),
    gen_tcp:close(C),
    {error, econnrefused} = gen_tcp:connect({127,0,0,1}, P, [], 3000),
    ok.

%% No EPMD on the port: the embedded server binds where the node listens (and loopback), not everywhere;
%% a local erl on that EPMD reaches the node.
t_embedded_epmd() ->
    E = free_port(),
    Es = integer_to_list(E),
    {H, P} = cnode("cnode_emb", "emb1@127.0.0.1", ["--epmd-port", Es, "--listen-addr", "127.0.0.1"],
                   no_epmd_env()),
    {ok, L} = wait_line(H, "started embedded EPMD server on port " ++ Es, 0, 1000),
    info("~ts", [L]),
    expect_listening(E, [a("127.0.0.1", E), a("[::1]", E)]),
    expect_listening(P, [a("127.0.0.1", P)]),
    step("erl peer on the embedded EPMD"),
    Peer = start_ext("erl_emb", os:find_executable("erl"),
                     ["-noinput", "-name", "pe@127.0.0.1", "-setcookie", cfg(cookie), "-eval",
                      "R = net_adm:ping('emb1@127.0.0.1'), "
                      "K = try gen_server:call({cnode_kv, 'emb1@127.0.0.1'}, {put, k, v}, 5000) catch C:E -> {C, E} end, "
                      "io:format(\"PEER ~p ~p~n\", [R, K]), halt()."],
                     env([{"ERL_EPMD_PORT", Es}])),
    case wait_line(Peer, "PEER ", 0, 20000) of
        {ok, "PEER pong ok"} -> ok;
        R -> fail("erl on the embedded EPMD: ~p: ~ts", [R, tail(Peer, 5)])
    end.

%% ERL_EPMD_ADDRESS is what OTP's epmd reads: it wins over --listen-addr.
t_epmd_env_wins() ->
    E = free_port(),
    {H, P} = cnode("cnode_env", "env1@127.0.0.1", ["--epmd-port", integer_to_list(E), "--listen-addr", "::"],
                   [{"ERL_EPMD_ADDRESS", "127.0.0.1"}]),
    {ok, L} = wait_line(H, "(ERL_EPMD_ADDRESS)", 0, 1000),
    info("~ts", [L]),
    expect_listening(E, [a("127.0.0.1", E), a("[::1]", E)]),
    expect_listening(P, [a("*", P)]). % "::" is one dual-stack socket

%% What README's Operations section says is exposed by default: the distribution port on every IPv4 interface,
%% an embedded EPMD on every IPv4 and IPv6 interface.
t_default() ->
    E = free_port(),
    {_, P} = cnode("cnode_def", "def1@127.0.0.1", ["--epmd-port", integer_to_list(E)], no_epmd_env()),
    expect_listening(E, [a("0.0.0.0", E), a("[::]", E)]),
    expect_listening(P, [a("0.0.0.0", P)]).
