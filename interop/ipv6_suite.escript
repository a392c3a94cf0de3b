#!/usr/bin/env escript
%%! -noinput -proto_dist inet6_tcp
%% IPv6 distribution (issue 18): build/cnode with --proto-dist inet6_tcp / inet6_tls against OTP nodes running
%% -proto_dist inet6_tcp / inet6_tls, every node named x@::1. This node is t6@::1 (inet6_tcp). Both ways (the
%% BEAM connects to the C node, the C node connects out), through OTP's own epmd (run.sh's, which listens on
%% IPv4 and IPv6), cnode-epmd and the embedded EPMD, and over TLS with certificates naming ::1 as OTP 25
%% (DNS:::1) and OTP 27+ (IP:::1) check it. Run by interop/run.sh with --cnode BIN --repo DIR --build DIR
%% --epmd-port P --free-port P2 --tmp DIR --pidfile F. A host without an IPv6 loopback skips the suite, saying
%% why. Output: `ok name` / `FAIL name: reason`, then `ipv6_suite: N passed, N failed`.
-mode(compile).

-import(interop_lib, [cfg/1, info/2, step/1, fail/2, flat/2, start_ext/4, start_cnode/3, start_erl/2,
                      wait_line/4, mark/1, tail/2, base_env/0, ctl/3, echo_once/3]).

-define(T, 8000).

tests() ->
    [{beam_to_c, 20, fun t_beam_to_c/0, #{shared_cnode => false}},
     {c_to_beam, 25, fun t_c_to_beam/0, #{shared_cnode => false}},
     {cnode_epmd_both_ways, 30, fun t_cnode_epmd/0, #{shared_cnode => false}},
     {embedded_epmd_both_ways, 30, fun t_embedded_epmd/0, #{shared_cnode => false}},
     {tls_both_ways, 40, fun t_tls/0, #{shared_cnode => false}},
     {ipv4_host_refused, 15, fun t_ipv4_host/0, #{shared_cnode => false}}].

main(Args) ->
    case gen_tcp:listen(0, [inet6, {ip, {0,0,0,0,0,0,0,1}}]) of
        {ok, S} ->
            gen_tcp:close(S);
        {error, Why} ->
            io:format("  # skipped: no IPv6 loopback on this host (listening on ::1: ~p; see ip -6 addr show lo)~n"
                      "ipv6_suite: 0 passed, 0 failed~n", [Why]),
            halt(0)
    end,
    Tmp = arg_value("--tmp", Args),
    Lib = filename:join(filename:dirname(escript:script_name()), "interop_lib.erl"),
    case Tmp =/= undefined andalso compile:file(Lib, [{outdir, Tmp}, return_errors]) of
        {ok, _} -> true = code:add_patha(Tmp);
        Err -> setup_fail("cannot compile ~ts into ~p: ~p", [Lib, Tmp, Err])
    end,
    Dir = filename:join(Tmp, "tls6"),
    case make_certs(Dir) of
        ok -> persistent_term:put(tls6_conf, write_optfile(Dir));
        {error, Why2} -> setup_fail("cannot make certificates with openssl: ~ts", [Why2])
    end,
    interop_lib:main(Args, "ipv6_suite", tests(),
                     #{node => 't6@::1', budget_ms => 120000, fail_logs => ["cnode", "erl"]}).

setup_fail(F, A) ->
    io:format("FAIL setup: " ++ F ++ "~nipv6_suite: 0 passed, 1 failed~n", A),
    halt(1).

arg_value(_, []) -> undefined;
arg_value(K, [K, V | _]) -> V;
arg_value(K, [_ | T]) -> arg_value(K, T).

%% ---- helpers ------------------------------------------------------------------------------------------------

%% A CA and one node certificate whose subjectAltName names ::1 both ways: OTP 25 checks a host that is an IP
%% address among the DNS names, OTP 27 and later among the IP addresses.
make_certs(Dir) ->
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Script = "set -e; cd '" ++ Dir ++ "'\n"
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem "
        "-subj /CN=ca6 -days 30\n"
        "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout node.key -out node.csr "
        "-subj /CN=node6\n"
        "printf 'subjectAltName=DNS:::1,IP:::1\\nbasicConstraints=CA:FALSE\\nkeyUsage=digitalSignature\\n"
        "extendedKeyUsage=serverAuth,clientAuth\\n' > node.ext\n"
        "openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -extfile node.ext "
        "-out node.pem\n"
        "echo CERTS_OK\n",
    Out = os:cmd("sh -c \"$(cat <<'EOS'\n" ++ Script ++ "EOS\n)\" 2>&1"),
    case string:find(Out, "CERTS_OK") of
        nomatch -> {error, Out};
        _ -> ok
    end.

%% The optfile every TLS node of the suite reads, verify_peer both ways.
write_optfile(Dir) ->
    F = fun(N) -> "\"" ++ filename:join(Dir, N) ++ "\"" end,
    Side = "[{certfile, " ++ F("node.pem") ++ "}, {keyfile, " ++ F("node.key") ++ "}, {cacertfile, " ++
        F("ca.pem") ++ "}, {verify, verify_peer}",
    P = filename:join(Dir, "good.conf"),
    ok = file:write_file(P, "[{server, " ++ Side ++ ", {fail_if_no_peer_cert, true}]},\n {client, " ++ Side ++
                             "]}].\n"),
    P.

free_port() ->
    {ok, S} = gen_tcp:listen(0, [{ip, {127,0,0,1}}, {reuseaddr, false}]),
    {ok, P} = inet:port(S),
    gen_tcp:close(S),
    P.

%% Waits for a line of H's output after Since containing Sub; returns it.
expect_line(H, Sub, Since) ->
    case wait_line(H, Sub, Since, ?T) of
        {ok, L} -> info("~ts: ~ts", [maps:get(name, H), L]), L;
        R -> fail("~ts printed no line matching ~tp (~p); last lines: ~ts", [maps:get(name, H), Sub, R, tail(H, 6)])
    end.

puppet(Node) ->
    P = spawn(Node, cnode_demo, puppet, [self()]),
    node(P) =:= Node orelse fail("spawn(~ts, cnode_demo, puppet, _) gave ~p", [Node, P]),
    P.

%% A cnode on EPMD port Epmd (run.sh's when undefined) with Extra arguments; waits for its ready line.
cnode6(Proc, Name, Extra, Epmd) ->
    step("starting " ++ Proc),
    EpmdPort = case Epmd of undefined -> cfg('epmd-port'); _ -> integer_to_list(Epmd) end,
    {Exe, Args} = interop_lib:cnode_cmd(["--name", Name, "--cookie", cfg(cookie), "--epmd-port", EpmdPort | Extra]),
    H = start_ext(Proc, Exe, Args, [{"ERL_EPMD_PORT", EpmdPort}, {"ERL_EPMD_ADDRESS", false} | base_env()]),
    interop_lib:wait_ready(H, Name, 0, 15000),
    H.

%% Two erl peers on EPMD port Epmd with DistArgs (-proto_dist ...): s6<Tag> only waits (its interop_sink prints
%% what it gets); a6<Tag> pings the C node Cn, calls its cnode_kv, and asks its cnode_ctl to send to s6<Tag>'s
%% sink, which makes the C node connect out to s6<Tag> through that EPMD.
both_ways(Tag, Cn, DistArgs, Epmd) ->
    Env = [{"ERL_EPMD_PORT", integer_to_list(Epmd)}],
    {S, SNode} = start_erl("s6" ++ Tag, #{host => "::1", args => DistArgs ++ ["-connect_all", "false"], env => Env}),
    Msg = flat("{from_c,~ts}", [Tag]), % as ~p prints it
    Eval = flat("C = '~ts', Pong = net_adm:ping(C), "
                "Kv = gen_server:call({cnode_kv, C}, {put, v6, node()}, 5000), "
                "{ok, Me} = gen_server:call({cnode_kv, C}, {get, v6}, 5000), "
                "Sent = gen_server:call({cnode_ctl, C}, {send, {interop_sink, '~ts'}, ~ts}, 5000), "
                "io:format(\"A6 ~~p ~~p ~~p ~~p~~n\", [Pong, Kv, Me =:= node(), Sent]),",
                [Cn, SNode, Msg]),
    {A, _} = start_erl("a6" ++ Tag, #{host => "::1", args => DistArgs ++ ["-connect_all", "false"], env => Env,
                                      eval => Eval}),
    expect_line(A, "A6 pong ok true ok", 0),
    expect_line(S, "SINK " ++ Msg, 0),
    ok.

%% ---- tests ------------------------------------------------------------------------------------------------

%% This node (inet6_tcp, on run.sh's OTP epmd) reaches a C node started with --proto-dist inet6_tcp: ping, echo,
%% a gen_server call, and rpc:call(C, erlang, node, []).
t_beam_to_c() ->
    {H, _} = start_cnode("cnode_6a", "c6a@::1", ["--proto-dist", "inet6_tcp"]),
    Cn = 'c6a@::1',
    pong =:= net_adm:ping(Cn) orelse fail("ping c6a@::1: pang", []),
    {Cn, hi} =:= echo_once(Cn, {Cn, hi}, ?T) orelse fail("no echo", []),
    ok = gen_server:call({cnode_kv, Cn}, {put, k6, <<"v6">>}, ?T),
    {ok, <<"v6">>} = gen_server:call({cnode_kv, Cn}, {get, k6}, ?T),
    Cn = rpc:call(Cn, erlang, node, [], ?T),
    expect_line(H, "nodeup t6@::1", 0),
    ok.

%% The C node connects out to BEAM nodes over IPv6: a send through cnode_ctl to a fresh erl peer, and the
%% C puppet's rpc:call and erpc:call to it.
t_c_to_beam() ->
    {H, _} = start_cnode("cnode_6b", "c6b@::1", ["--proto-dist", "inet6_tcp", "--connect-all", "false"]),
    Cn = 'c6b@::1',
    {BH, B} = start_erl("b6", #{host => "::1", args => ["-proto_dist", "inet6_tcp", "-connect_all", "false"]}),
    Since = mark(H),
    {ok, ok} = ctl(Cn, {send, {interop_sink, B}, {from_c, six}}, ?T),
    expect_line(BH, "SINK {from_c,six}", 0),
    expect_line(H, "nodeup b6@::1", Since),
    P = puppet(Cn),
    P ! {'$puppet', {rpc, B, erlang, node, []}},
    receive {puppet, P, {result, ok, B}} -> ok after ?T -> fail("no rpc result from the puppet", []) end,
    P ! {'$puppet', {erpc, B, erlang, system_info, [otp_release]}},
    receive {puppet, P, {result, ok, Rel}} when is_list(Rel) -> info("erpc over IPv6: OTP ~ts", [Rel])
    after ?T -> fail("no erpc result from the puppet", [])
    end.

%% Both ways through cnode-epmd (the project's EPMD daemon, listening on every IPv4 and IPv6 address).
t_cnode_epmd() ->
    E = free_port(),
    step("starting cnode-epmd"),
    Ep = start_ext("cnode_epmd6", filename:join(cfg(build), "cnode-epmd"), ["-port", integer_to_list(E)],
                   [{"ERL_EPMD_ADDRESS", false} | base_env()]),
    interop_lib:wait_until(fun() -> case gen_tcp:connect({0,0,0,0,0,0,0,1}, E, [inet6], 500) of
                                        {ok, S} -> gen_tcp:close(S), true;
                                        _ -> false
                                    end end, 5000, "cnode-epmd on ::1") orelse
        fail("cnode-epmd does not answer on [::1]:~b: ~ts", [E, tail(Ep, 5)]),
    cnode6("cnode_6e", "c6e@::1", ["--proto-dist", "inet6_tcp"], E),
    both_ways("e", "c6e@::1", ["-proto_dist", "inet6_tcp"], E).

%% No EPMD on the port: the C node serves one itself (every address), and erl inet6 nodes use it both ways.
t_embedded_epmd() ->
    E = free_port(),
    H = cnode6("cnode_6m", "c6m@::1", ["--proto-dist", "inet6_tcp"], E),
    expect_line(H, "started embedded EPMD server on port " ++ integer_to_list(E), 0),
    both_ways("m", "c6m@::1", ["-proto_dist", "inet6_tcp"], E).

%% -proto_dist inet6_tls: TLS over IPv6 both ways with verify_peer on both sides, the C node checking the
%% peers' ::1 certificate and OTP checking the C node's.
t_tls() ->
    Conf = persistent_term:get(tls6_conf),
    H = cnode6("cnode_6t", "c6t@::1", ["--proto-dist", "inet6_tls", "--ssl-dist-optfile", Conf, "--verbose"],
               undefined),
    both_ways("t", "c6t@::1", ["-proto_dist", "inet6_tls", "-ssl_dist_optfile", Conf],
              list_to_integer(cfg('epmd-port'))),
    expect_line(H, ["TLS with", "/CN=node6 (verified)"], 0),
    ok.

%% A name whose host is an IPv4 address is not reachable from an inet6 node (OTP's inet6_tcp cannot either):
%% the C node says so instead of trying.
t_ipv4_host() ->
    {H, _} = start_cnode("cnode_6v4", "c6v@::1", ["--proto-dist", "inet6_tcp"]),
    Since = mark(H),
    {ok, ok} = ctl('c6v@::1', {send, {nobody, 'v4@127.0.0.1'}, hi}, ?T),
    expect_line(H, "its host is an IPv4 address and this node runs inet6", Since),
    ok.
