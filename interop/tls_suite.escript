#!/usr/bin/env escript
%%! -proto_dist inet_tls -connect_all false
%% Interop tests of issue 10, "TLS distribution": build/cnode with --proto-dist inet_tls against real OTP nodes (25
%% on the host, 27 and 29 in make test-otp's chroots; the TLS versions taken by default follow the release, issue 18)
%% running -proto_dist inet_tls -ssl_dist_optfile F, all reading the very same optfile. Run by
%% interop/run.sh with --cnode BIN --repo DIR --build DIR --epmd-port P --free-port P2 --tmp DIR --pidfile F
%% [test...] and ERL_EPMD_PORT=P; the harness is interop/interop_lib.erl, compiled into --tmp at startup.
%% Certificates are made with the `openssl` command into TMP/tls: two CAs, a node certificate of CA 1 (every
%% good node uses it), one of CA 2, and an expired one of CA 1.
%%
%% This node (tls@127.0.0.1) itself runs inet_tls: erl reads -ssl_dist_optfile at boot, and an escript's
%% emulator flags are fixed, so main/1 puts the consulted optfile (ssl_dist_sup:consult/1, what erl does with
%% the flag) into the ssl_dist_opts table inet_tls_dist reads, before distribution starts. Output: `ok name` /
%% `FAIL name: reason`, then `tls_suite: N passed, N failed`.
-mode(compile).
-export([main/1]).

-import(interop_lib, [cfg/1, info/2, step/1, fail/2, flat/2, now_ms/0, main_cnode/0, start_cnode/3, start_erl/2,
                      start_ext/4, base_env/0, wait_line/4, mark/1, tail/2, echo_once/3, flush_all/0]).

-define(CN_NAME, "tcnode@127.0.0.1").
-define(CN, 'tcnode@127.0.0.1').
-define(T, 8000).

tests() ->
    [{beam_to_c_ping_echo, 30, fun t_beam_to_c_ping_echo/0},
     {c_to_beam_connect, 30, fun t_c_to_beam_connect/0},
     {links_monitors, 30, fun t_links_monitors/0},
     {big_binary_both_ways, 40, fun t_big_binary/0},
     {refuse_client_other_ca, 25, fun() -> t_refuse_client("rogue_ca", "unknown CA") end},
     {refuse_client_expired, 25, fun() -> t_refuse_client("rogue_expired", "expired certificate") end},
     {refuse_client_no_cert, 25, fun() -> t_refuse_client("rogue_nocert", "no client certificate") end},
     {default_versions_per_release, 40, fun t_default_versions/0},
     {client_tls13_only_per_release, 30, fun t_client_tls13_only/0},
     {otp_release_flag_sets_tls_defaults, 45, fun t_release_flag/0},
     {refuse_plaintext_erl, 25, fun t_refuse_plaintext_erl/0},
     {c_refused_other_ca, 30, fun() -> t_c_refused("rogue_ca", "refused our certificate: unknown CA") end},
     {c_refused_expired, 30, fun() -> t_c_refused("rogue_expired", "refused our certificate: expired") end},
     %% TLS 1.2 says handshake_failure; TLS 1.3 (from OTP 29, the release the C node learns) certificate_required
     {c_refused_no_cert, 30, fun() -> t_c_refused("rogue_nocert", #{"TLSv1.2" => "handshake_failure",
                                                                  "TLSv1.3" => "certificate_required"}) end},
     {c_refuses_server_other_ca, 30, fun t_c_refuses_server/0},
     {c_to_plaintext_erl, 30, fun t_c_to_plaintext_erl/0},
     {plain_c_to_tls_erl, 30, fun t_plain_c_to_tls_erl/0},
     {tls13_both_ways, 30, fun t_tls13/0},
     {tls13_refusals, 30, fun t_tls13_refusals/0},
     {hostname_checked_as_otp, 30, fun t_hostname/0}].

main(Args) ->
    Tmp = arg_value("--tmp", Args),
    Lib = filename:join(filename:dirname(escript:script_name()), "interop_lib.erl"),
    case Tmp =/= undefined andalso compile:file(Lib, [{outdir, Tmp}, return_errors]) of
        {ok, _} -> true = code:add_patha(Tmp);
        Err -> setup_fail("cannot compile ~ts into ~p: ~p", [Lib, Tmp, Err])
    end,
    Dir = filename:join(Tmp, "tls"),
    case make_certs(Dir) of
        ok -> ok;
        {error, Why} -> setup_fail("cannot make certificates with openssl: ~ts", [Why])
    end,
    Good = write_optfiles(Dir),
    Self = self(),
    spawn(fun() ->
                  ets:new(ssl_dist_opts, [named_table, protected, set]),
                  ets:insert(ssl_dist_opts, ssl_dist_sup:consult(Good)),
                  Self ! opts_ready,
                  receive never -> ok end
          end),
    receive opts_ready -> ok end,
    persistent_term:put(tls_dir, Dir),
    interop_lib:main(Args, "tls_suite", tests(),
                     #{node => 'tls@127.0.0.1', budget_ms => 190000, shared_cnode => ?CN_NAME,
                       shared_cnode_proc => "cnode_tls", fail_logs => ["cnode", "erl"],
                       shared_cnode_args => ["--proto-dist", "inet_tls", "--ssl-dist-optfile", Good, "--verbose"]}).

setup_fail(F, A) ->
    io:format("FAIL setup: " ++ F ++ "~ntls_suite: 0 passed, 1 failed~n", A),
    halt(1).

arg_value(_, []) -> undefined;
arg_value(K, [K, V | _]) -> V;
arg_value(K, [_ | T]) -> arg_value(K, T).

%% ---------------------------------------------------------------------------------------------------------
%% certificates and optfiles

make_certs(Dir) ->
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Script = "set -e; cd '" ++ Dir ++ "'\n"
        "ca() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $1.key -out $1.pem "
        "-subj /CN=$1 -days 30; }\n"
        "csr() { openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $1.key -out $1.csr "
        "-subj /CN=$1; printf 'subjectAltName=DNS:127.0.0.1,DNS:localhost,IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n"
        "keyUsage=digitalSignature\\nextendedKeyUsage=serverAuth,clientAuth\\n' > $1.ext; }\n"
        "leaf() { csr $1; openssl x509 -req -in $1.csr -CA $2.pem -CAkey $2.key -CAcreateserial -days $3 "
        "-extfile $1.ext -out $1.pem; }\n"
        %% OpenSSL 3.5+ refuses `x509 -days -1`; `openssl ca` takes explicit dates in every 3.x: valid from two
        %% days ago until yesterday.
        "expired() { csr $1; mkdir -p $1.ca; : > $1.ca/index; echo 01 > $1.ca/serial; "
        "printf '[ca]\\ndefault_ca=d\\n[d]\\ndatabase=%s/index\\nserial=%s/serial\\nnew_certs_dir=%s\\n"
        "default_md=sha256\\npolicy=p\\nunique_subject=no\\n[p]\\ncommonName=supplied\\n' $1.ca $1.ca $1.ca "
        "> $1.ca/conf; openssl ca -batch -notext -config $1.ca/conf -cert $2.pem -keyfile $2.key -in $1.csr "
        "-extfile $1.ext -startdate $(date -u -d '-2 days' +%Y%m%d%H%M%SZ) "
        "-enddate $(date -u -d '-1 day' +%Y%m%d%H%M%SZ) -out $1.pem; }\n"
        "ca ca1; ca ca2; leaf node ca1 30; leaf other ca2 30; expired expired ca1\n"
        "sed -i 's/^subjectAltName=.*/subjectAltName=DNS:elsewhere.example/' node.ext; "
        "openssl x509 -req -in node.csr -CA ca1.pem -CAkey ca1.key -CAcreateserial -days 30 -extfile node.ext "
        "-out nosan.pem; cp node.key nosan.key\n"
        "cat ca1.pem ca2.pem > both.pem\n"
        "echo CERTS_OK\n",
    Out = os:cmd("sh -c \"$(cat <<'EOS'\n" ++ Script ++ "EOS\n)\" 2>&1"),
    case string:find(Out, "CERTS_OK") of
        nomatch -> {error, Out};
        _ -> ok
    end.

%% Writes the optfiles; returns the good one, which every good node uses unchanged.
write_optfiles(Dir) ->
    F = fun(N) -> "\"" ++ filename:join(Dir, N) ++ "\"" end,
    Side = fun(Cert, Ca, Extra) ->
                   "[{certfile, " ++ F(Cert ++ ".pem") ++ "}, {keyfile, " ++ F(Cert ++ ".key") ++ "},\n"
                       "    {cacertfile, " ++ F(Ca) ++ "}, {verify, verify_peer}" ++ Extra ++ "]"
           end,
    Write = fun(Name, Server, Client) ->
                    P = filename:join(Dir, Name ++ ".conf"),
                    ok = file:write_file(P, "%% ssl_dist_optfile for " ++ Name ++ "\n[{server, " ++ Server ++
                                             "},\n {client, " ++ Client ++ "}].\n"),
                    P
            end,
    Fail = ", {fail_if_no_peer_cert, true}, {secure_renegotiate, true}",
    Good = Write("good", Side("node", "ca1.pem", Fail), Side("node", "ca1.pem", ", {secure_renegotiate, true}")),
    %% Rogue nodes: a good server side (so this node can reach them to drive them), a bad client side.
    GoodServer = Side("node", "ca1.pem", Fail),
    Write("rogue_ca", GoodServer, Side("other", "both.pem", "")),
    Write("rogue_expired", GoodServer, Side("expired", "ca1.pem", "")),
    Write("rogue_nocert", GoodServer, "[{cacertfile, " ++ F("ca1.pem") ++ "}, {verify, verify_peer}]"),
    Write("rogue_v13", GoodServer, Side("node", "ca1.pem", ", {versions, ['tlsv1.3']}")),
    %% TLS 1.2 named in the optfile: wins over the release's defaults.
    V12 = ", {versions, ['tlsv1.2']}",
    Write("v12", Side("node", "ca1.pem", Fail ++ V12), Side("node", "ca1.pem", V12)),
    %% A cnode whose client trusts only CA 2: it must refuse a server certificate of CA 1.
    Write("trust_ca2", GoodServer, Side("node", "ca2.pem", "")),
    %% TLS 1.3 only, both sides; and a rogue client of CA 2 on TLS 1.3 (refused after its own handshake ends).
    %% (OTP refuses secure_renegotiate together with TLS 1.3 only: an option dependency error.)
    V13 = ", {versions, ['tlsv1.3']}",
    Fail13 = ", {fail_if_no_peer_cert, true}" ++ V13,
    Write("tls13", Side("node", "ca1.pem", Fail13), Side("node", "ca1.pem", V13)),
    Write("tls13_rogue", Side("node", "ca1.pem", Fail13), Side("other", "both.pem", V13)),
    %% A server certificate not naming 127.0.0.1 (only DNS:elsewhere.example).
    Write("nosan", Side("nosan", "ca1.pem", Fail), Side("node", "ca1.pem", "")),
    Good.

conf(Name) -> filename:join(persistent_term:get(tls_dir), Name ++ ".conf").
tls_args(Conf) -> ["-proto_dist", "inet_tls", "-ssl_dist_optfile", conf(Conf), "-connect_all", "false"].

%% ---------------------------------------------------------------------------------------------------------
%% helpers

puppet(Node) ->
    P = spawn(Node, cnode_demo, puppet, [self()]),
    node(P) =:= Node orelse fail("spawn(~ts, cnode_demo, puppet, _) gave ~p", [Node, P]),
    P.

cmd(P, Cmd) -> P ! {'$puppet', Cmd}, ok.

pmsg(P, What) -> pmsg(P, What, ?T).
pmsg(P, What, T) ->
    receive {puppet, P, M} -> M
    after T -> fail("puppet ~p: no message within ~b ms while waiting for ~ts", [P, T, What])
    end.

%% Waits for a line in H's output after Since containing Sub.
expect_log(H, Sub, Since) ->
    case wait_line(H, Sub, Since, ?T) of
        {ok, L} -> info("~ts: ~ts", [maps:get(name, H), L]), L;
        R -> fail("~ts logged no line matching ~tp (~p); last lines: ~ts", [maps:get(name, H), Sub, R, tail(H, 6)])
    end.

%% The release the shared cnode (or Node) follows, once it has learned it from this node (its first BEAM peer): it
%% runs without --otp-release, so its TLS defaults are those of this node's release.
learned_release() ->
    main_cnode(),
    learned_release(?CN).
learned_release(Node) ->
    Rel = list_to_integer(erlang:system_info(otp_release)),
    Ask = fun() -> try gen_server:call({cnode_ctl, Node}, otp_release, ?T) catch C:E -> {C, E} end end,
    interop_lib:wait_until(fun() -> Ask() =:= {Rel, known} end, 15000, "release learned")
        orelse fail("~ts's cnode_ctl otp_release answers ~0tp, want {~b, known}", [Node, Ask(), Rel]),
    Rel.

%% The TLS version the defaults of inet_tls_dist of release Rel agree on between two such nodes.
default_version(Rel) when Rel >= 29 -> "TLSv1.3";
default_version(_) -> "TLSv1.2".

%% A fresh connection from this (good) node to the shared cnode still works.
good_peer_connects() ->
    step("a good peer connects"),
    erlang:disconnect_node(?CN),
    wait_gone(?CN, 50),
    pong =:= net_adm:ping(?CN) orelse fail("a good TLS node could not connect afterwards", []),
    {?CN, hi} =:= echo_once(?CN, {?CN, hi}, ?T) orelse fail("no echo after reconnecting", []).

wait_gone(_, 0) -> ok;
wait_gone(N, K) -> case lists:member(N, nodes(connected)) of true -> timer:sleep(20), wait_gone(N, K - 1); false -> ok end.

%% An erl peer on the good optfile.
good_erl(Short) -> start_erl(Short, #{args => tls_args("good")}).

%% ---------------------------------------------------------------------------------------------------------
%% tests: the good path

t_beam_to_c_ping_echo() ->
    H = main_cnode(),
    Since = mark(H),
    erlang:disconnect_node(?CN),
    wait_gone(?CN, 50),
    pong =:= net_adm:ping(?CN) orelse fail("ping over TLS: pang", []),
    %% Mutual authentication: the C node verified our certificate, and we verified its (verify_peer both sides).
    expect_log(H, ["TLS with", "/CN=node (verified)"], Since),
    rand:seed(exsss, {10, 10, 10}),
    Terms = [gen(0) || _ <- lists:seq(1, 1000)],
    step("echo of 1000 terms"),
    Self = self(),
    [{echo, ?CN} ! {Self, T} || T <- Terms],
    Back = [receive R -> R after ?T -> fail("echo ~b of 1000: no reply", [I]) end
            || I <- lists:seq(1, 1000)],
    case Back =:= Terms of
        true -> info("1000 terms echoed over TLS", []);
        false -> [{A, B} | _] = [{A, B} || {A, B} <- lists:zip(Terms, Back), A =/= B],
                 fail("echo differs: ~ts", [interop_lib:first_diff(A, B)])
    end.

gen(D) when D > 3 -> rand:uniform(1000);
gen(D) ->
    case rand:uniform(12) of
        1 -> rand:uniform(1 bsl 70) - (1 bsl 69);
        2 -> rand:uniform() * 1.0e10;
        3 -> list_to_atom("a" ++ integer_to_list(rand:uniform(50)));
        4 -> crypto:strong_rand_bytes(rand:uniform(200));
        5 -> [gen(D + 1) || _ <- lists:seq(1, rand:uniform(5))];
        6 -> list_to_tuple([gen(D + 1) || _ <- lists:seq(1, rand:uniform(4))]);
        7 -> maps:from_list([{gen(D + 1), gen(D + 1)} || _ <- lists:seq(1, rand:uniform(3))]);
        8 -> self();
        9 -> make_ref();
        10 -> "string " ++ integer_to_list(rand:uniform(99));
        11 -> <<"unicode ", (unicode:characters_to_binary([955, 8364]))/binary>>;
        12 -> rand:uniform(255)
    end.

t_c_to_beam_connect() ->
    H = main_cnode(),
    {_, Peer} = good_erl("tpeer"),
    Since = mark(H),
    P = puppet(?CN),
    cmd(P, {rpc, Peer, erlang, node, []}),
    case pmsg(P, "rpc result") of
        {result, ok, Peer} -> ok;
        Other -> fail("rpc from the C node to ~ts over TLS: ~p", [Peer, Other])
    end,
    expect_log(H, ["TLS with " ++ atom_to_list(Peer), "(verified)"], Since),
    true = lists:member(?CN, erpc:call(Peer, erlang, nodes, [])).

t_links_monitors() ->
    main_cnode(),
    process_flag(trap_exit, true),
    %% C links to BEAM; the BEAM process dies.
    P = puppet(?CN),
    cmd(P, {trap_exit, true}),
    L = spawn(fun() -> receive die -> exit(boom) end end),
    cmd(P, {link, L}),
    cmd(P, ping),
    pong = pmsg(P, "pong"),
    L ! die,
    {'EXIT', L, boom} = pmsg(P, "EXIT from the BEAM process"),
    %% C monitors BEAM.
    M = spawn(fun() -> receive die -> exit(bye) end end),
    cmd(P, {monitor, M}),
    {monitor, Ref} = pmsg(P, "monitor ref"),
    M ! die,
    {'DOWN', Ref, process, M, bye} = pmsg(P, "DOWN"),
    %% BEAM links to and monitors C; the C process exits.
    P2 = puppet(?CN),
    link(P2),
    MRef = erlang:monitor(process, P2),
    cmd(P2, {exit, goodbye}),
    receive {'EXIT', P2, goodbye} -> ok after ?T -> fail("no EXIT from the C process", []) end,
    receive {'DOWN', MRef, process, P2, goodbye} -> ok after ?T -> fail("no DOWN from the C process", []) end,
    cmd(P, {exit, normal}).

t_big_binary() ->
    main_cnode(),
    Big = crypto:strong_rand_bytes(8 bsl 20),
    T0 = now_ms(),
    {echo, ?CN} ! {self(), Big},
    receive Big -> ok; Other when is_binary(Other) -> fail("8 MiB echo differs (~b bytes back)", [byte_size(Other)])
    after 20000 -> fail("no 8 MiB echo", []) end,
    info("8 MiB BEAM -> C -> BEAM over TLS in ~b ms", [now_ms() - T0]),
    P = puppet(?CN),
    Len = 8 bsl 20,
    cmd(P, {send_big, self(), Len}),
    receive
        B when is_binary(B), byte_size(B) =:= Len ->
            Want = << <<(I rem 251)>> || I <- lists:seq(0, Len - 1) >>,
            B =:= Want orelse fail("8 MiB from C: bytes differ", [])
    after 20000 -> fail("no 8 MiB binary from the C node", [])
    end.

%% ---------------------------------------------------------------------------------------------------------
%% tests: refusals of clients by the C node

%% An erl node on a rogue optfile pings the shared cnode: refused with Reason in the C node's log; then a good
%% node connects.
t_refuse_client(Conf, Reason) ->
    H = main_cnode(),
    Since = mark(H),
    {E, _} = start_erl("e_" ++ Conf, #{args => tls_args(Conf),
                                       eval => "io:format(\"PING ~p~n\", [net_adm:ping('" ++ ?CN_NAME ++ "')]),"}),
    {ok, _} = wait_line(E, "PING pang", 0, 100),
    expect_log(H, ["handshake with", Reason], Since),
    good_peer_connects().

t_refuse_plaintext_erl() ->
    H = main_cnode(),
    Since = mark(H),
    {E, _} = start_erl("e_plain", #{args => ["-connect_all", "false"],
                                    eval => "io:format(\"PING ~p~n\", [net_adm:ping('" ++ ?CN_NAME ++ "')]),"}),
    {ok, _} = wait_line(E, "PING pang", 0, 100),
    expect_log(H, ["handshake with", "plaintext peer on a TLS port"], Since),
    good_peer_connects().

%% ---------------------------------------------------------------------------------------------------------
%% tests: the C node as a client, refused by an erl server

%% A cnode whose client side uses Conf connects to a good erl server: the server refuses it, and the C node
%% logs why (Reason); it keeps serving (its puppet answers) and reaches the server with the shared cnode.
t_c_refused(Conf, Reason0) ->
    {_, Srv} = good_erl("srv"),
    Name = "rc_" ++ Conf,
    {R, _} = start_cnode("cnode_" ++ Name, Name ++ "@127.0.0.1",
                         ["--proto-dist", "inet_tls", "--ssl-dist-optfile", conf(Conf)]),
    Node = list_to_atom(Name ++ "@127.0.0.1"),
    Since = mark(R),
    P = puppet(Node),
    %% the C node learns this node's release (its first BEAM peer), whose TLS defaults it then takes
    Rel = learned_release(Node),
    Reason = case Reason0 of
                 #{} -> maps:get(default_version(Rel), Reason0);
                 _ -> Reason0
             end,
    cmd(P, {rpc, Srv, erlang, node, []}),
    case pmsg(P, "rpc result", 15000) of
        {result, ok, {badrpc, nodedown}} -> ok;
        Other -> fail("rpc from the rogue C node: ~p (expected {badrpc, nodedown})", [Other])
    end,
    expect_log(R, ["handshake with " ++ atom_to_list(Srv), Reason], Since),
    cmd(P, ping),
    pong = pmsg(P, "pong after the refusal"),
    P2 = puppet(?CN),
    cmd(P2, {rpc, Srv, erlang, node, []}),
    {result, ok, Srv} = pmsg(P2, "rpc from the good C node").

%% A cnode trusting only CA 2 refuses the erl server's certificate (CA 1).
t_c_refuses_server() ->
    {_, Srv} = good_erl("srv"),
    {R, _} = start_cnode("cnode_trust2", "trust2@127.0.0.1",
                         ["--proto-dist", "inet_tls", "--ssl-dist-optfile", conf("trust_ca2")]),
    Since = mark(R),
    P = puppet('trust2@127.0.0.1'),
    cmd(P, {rpc, Srv, erlang, node, []}),
    {result, ok, {badrpc, nodedown}} = pmsg(P, "rpc result", 15000),
    expect_log(R, ["handshake with " ++ atom_to_list(Srv), "unknown CA: the server's certificate /CN=node"], Since),
    cmd(P, ping),
    pong = pmsg(P, "pong after the refusal").

t_c_to_plaintext_erl() ->
    H = main_cnode(),
    {_, Plain} = start_erl("plain", #{args => ["-connect_all", "false"]}),
    Since = mark(H),
    P = puppet(?CN),
    cmd(P, {rpc, Plain, erlang, node, []}),
    {result, ok, {badrpc, nodedown}} = pmsg(P, "rpc result", 15000),
    %% OTP's plain acceptor reads our ClientHello as a 2-byte length and closes; or it waits and we time out.
    expect_log(H, fun(L) -> string:find(L, "handshake with " ++ atom_to_list(Plain)) =/= nomatch andalso
                                (string:find(L, "a plaintext node?") =/= nomatch) end, Since),
    {_, Good} = good_erl("tgood"),
    cmd(P, {rpc, Good, erlang, node, []}),
    {result, ok, Good} = pmsg(P, "rpc to a good TLS node afterwards").

%% A plain cnode (no TLS) driven by a plain erl node tries the TLS erl server.
t_plain_c_to_tls_erl() ->
    {_, Srv} = good_erl("srv"),
    {R, _} = start_cnode("cnode_plainc", "plainc@127.0.0.1", []),
    Since = mark(R),
    Eval = "P = spawn('plainc@127.0.0.1', cnode_demo, puppet, [self()]), "
           "P ! {'$puppet', {rpc, '" ++ atom_to_list(Srv) ++ "', erlang, node, []}}, "
           "receive {puppet, P, Res} -> io:format(\"RESULT ~p~n\", [Res]) after 15000 -> io:format(\"RESULT none~n\") end, ",
    {E, _} = start_erl("drv", #{args => ["-connect_all", "false"], eval => Eval}),
    {ok, _} = wait_line(E, "RESULT {result,ok,{badrpc,nodedown}}", 0, 100),
    expect_log(R, ["handshake with " ++ atom_to_list(Srv), "the peer speaks TLS"], Since).

%% ---------------------------------------------------------------------------------------------------------
%% tests: TLS versions by default, per OTP release (issue 18)

%% No optfile here names versions, so both sides take their release's defaults: inet_tls_dist of OTP 25 to 28 adds
%% {versions, ['tlsv1.2']}, OTP 29's offers and accepts TLS 1.3 too. The shared cnode follows this node's release,
%% so BEAM -> C and C -> BEAM agree on TLS 1.3 from OTP 29 on and on TLS 1.2 before.
t_default_versions() ->
    H = main_cnode(),
    Rel = learned_release(),
    Want = default_version(Rel),
    step("BEAM -> C and C -> BEAM with the defaults of OTP " ++ integer_to_list(Rel) ++ ": " ++ Want),
    Since = mark(H),
    erlang:disconnect_node(?CN),
    wait_gone(?CN, 50),
    pong =:= net_adm:ping(?CN) orelse fail("ping over TLS: pang", []),
    expect_log(H, ["TLS with 127.0.0.1", Want ++ " ", "(verified)"], Since),
    {_, Peer} = good_erl("tdef"),
    P = puppet(?CN),
    cmd(P, {rpc, Peer, erlang, node, []}),
    {result, ok, Peer} = pmsg(P, "rpc result"),
    expect_log(H, ["TLS with " ++ atom_to_list(Peer), Want ++ " ", "(verified)"], Since).

%% A client offering TLS 1.3 only: refused by the shared cnode as by an erl node of OTP 25 to 28 (the C node's
%% reason: protocol version mismatch), accepted from OTP 29 on.
t_client_tls13_only() ->
    H = main_cnode(),
    case learned_release() >= 29 of
        false -> t_refuse_client("rogue_v13", "protocol version mismatch");
        true ->
            Since = mark(H),
            {E, _} = start_erl("e_rogue_v13", #{args => tls_args("rogue_v13"),
                                                eval => "io:format(\"PING ~p~n\", [net_adm:ping('" ++ ?CN_NAME ++ "')]),"}),
            {ok, _} = wait_line(E, "PING pong", 0, 100),
            expect_log(H, ["TLS with 127.0.0.1", "TLSv1.3 ", "(verified)"], Since)
    end.

%% --otp-release sets the defaults whatever release the peers run: a C node following 29 accepts a TLS 1.3-only
%% client and reaches a TLS 1.3-only erl server, one following 28 does neither, and an optfile naming
%% ['tlsv1.2'] wins over release 29.
t_release_flag() ->
    Cn = fun(Name, Conf, Rel) ->
                 {Hc, _} = start_cnode("cnode_" ++ Name, Name ++ "@127.0.0.1",
                                       ["--proto-dist", "inet_tls", "--ssl-dist-optfile", conf(Conf),
                                        "--otp-release", Rel, "--verbose"]),
                 Hc
         end,
    R29 = Cn("f29", "good", "29"),
    R28 = Cn("f28", "good", "28"),
    V12 = Cn("fv12", "v12", "29"),
    Ping = "io:format(\"PING ~p ~p ~p~n\", [net_adm:ping('f29@127.0.0.1'), net_adm:ping('f28@127.0.0.1'), "
           "net_adm:ping('fv12@127.0.0.1')]),",
    {E, _} = start_erl("e_v13_flag", #{args => tls_args("rogue_v13"), eval => Ping}),
    case wait_line(E, "PING ", 0, 300) of
        {ok, L} -> string:find(L, "PING pong pang pang") =/= nomatch orelse
                       fail("a TLS 1.3-only client pinging the C nodes following 29, 28, and 29 with "
                            "['tlsv1.2']: ~ts (want pong pang pang)", [L]);
        R -> fail("no PING line from the TLS 1.3-only client (~p)", [R])
    end,
    expect_log(R29, ["TLS with 127.0.0.1", "TLSv1.3 ", "(verified)"], 0),
    expect_log(R28, ["handshake with", "protocol version mismatch", "TLS 1.2 only"], 0),
    expect_log(V12, ["handshake with", "protocol version mismatch", "TLS 1.2 only"], 0),
    step("the C nodes following 29 and 28 connect to a TLS 1.3-only erl server"),
    {_, Srv} = start_erl("srv13f", #{args => tls_args("tls13")}),
    P29 = puppet('f29@127.0.0.1'),
    cmd(P29, {rpc, Srv, erlang, node, []}),
    {result, ok, Srv} = pmsg(P29, "rpc from the C node following 29", 15000),
    expect_log(R29, ["TLS with " ++ atom_to_list(Srv), "TLSv1.3 "], 0),
    P28 = puppet('f28@127.0.0.1'),
    cmd(P28, {rpc, Srv, erlang, node, []}),
    {result, ok, {badrpc, nodedown}} = pmsg(P28, "rpc from the C node following 28", 15000),
    expect_log(R28, ["handshake with " ++ atom_to_list(Srv), "protocol version mismatch"], 0).

%% ---------------------------------------------------------------------------------------------------------
%% tests: TLS 1.3, hostname checks

t_tls13() ->
    {H, _} = start_cnode("cnode_t13", "t13@127.0.0.1", ["--proto-dist", "inet_tls", "--ssl-dist-optfile", conf("tls13"),
                                                         "--verbose"]),
    {_, Srv} = start_erl("srv13", #{args => tls_args("tls13")}),
    %% This node speaks TLS 1.2 only up to OTP 28: an erl peer on the same TLS 1.3 file drives the C node. BEAM -> C: ping and
    %% an 8 MiB echo; C -> BEAM: the C node's puppet calls rpc on another TLS 1.3 erl node.
    Eval = "N = 't13@127.0.0.1', io:format(\"PING ~p~n\", [net_adm:ping(N)]), "
           "B = crypto:strong_rand_bytes(8 bsl 20), {echo, N} ! {self(), B}, "
           "receive B -> io:format(\"BIG ok~n\") after 20000 -> io:format(\"BIG none~n\") end, "
           "P = spawn(N, cnode_demo, puppet, [self()]), "
           "P ! {'$puppet', {rpc, '" ++ atom_to_list(Srv) ++ "', erlang, node, []}}, "
           "receive {puppet, P, Res} -> io:format(\"RESULT ~p~n\", [Res]) after 15000 -> io:format(\"RESULT none~n\") end, ",
    {E, _} = start_erl("e13", #{args => tls_args("tls13"), eval => Eval}),
    {ok, _} = wait_line(E, "PING pong", 0, 100),
    {ok, _} = wait_line(E, "BIG ok", 0, 100),
    {ok, _} = wait_line(E, "RESULT {result,ok,'" ++ atom_to_list(Srv) ++ "'}", 0, 100),
    expect_log(H, ["TLS with 127.0.0.1", "TLSv1.3", "(verified)"], 0),
    expect_log(H, ["TLS with " ++ atom_to_list(Srv), "TLSv1.3", "(verified)"], 0).

t_tls13_refusals() ->
    {H, _} = start_cnode("cnode_t13r", "t13r@127.0.0.1", ["--proto-dist", "inet_tls", "--ssl-dist-optfile",
                                                           conf("tls13")]),
    Since = mark(H),
    {E, _} = start_erl("e13r", #{args => tls_args("tls13_rogue"),
                                 eval => "io:format(\"PING ~p~n\", [net_adm:ping('t13r@127.0.0.1')]),"}),
    {ok, _} = wait_line(E, "PING pang", 0, 100),
    expect_log(H, ["handshake with", "unknown CA"], Since),
    %% The C node as a TLS 1.3 client with a CA 2 certificate: the erl server refuses it after the client's
    %% side of the handshake is done, so the refusal arrives as an alert during the distribution handshake.
    {_, Srv} = start_erl("srv13", #{args => tls_args("tls13")}),
    {R, _} = start_cnode("cnode_r13", "r13@127.0.0.1", ["--proto-dist", "inet_tls", "--ssl-dist-optfile",
                                                        conf("tls13_rogue")]),
    Drv = "P = spawn('r13@127.0.0.1', cnode_demo, puppet, [self()]), "
          "P ! {'$puppet', {rpc, '" ++ atom_to_list(Srv) ++ "', erlang, node, []}}, "
          "receive {puppet, P, Res} -> io:format(\"RESULT ~p~n\", [Res]) after 15000 -> io:format(\"RESULT none~n\") end, ",
    {D, _} = start_erl("drv13", #{args => tls_args("tls13"), eval => Drv}),
    {ok, _} = wait_line(D, "RESULT", 0, 100),
    {ok, _} = wait_line(D, "RESULT {result,ok,{badrpc,nodedown}}", 0, 100),
    expect_log(R, ["handshake with " ++ atom_to_list(Srv), "refused our certificate: unknown CA"], 0).

%% OTP's inet_tls_dist connects with {server_name_indication, Host} (the node name's host part), so under
%% verify_peer the server certificate must name that host (here DNS:127.0.0.1). Both an erl client and the C
%% node refuse a server whose certificate names only elsewhere.example.
t_hostname() ->
    {_, Srv} = start_erl("nosan", #{args => tls_args("nosan")}),
    Eval = "io:format(\"PING ~p~n\", [net_adm:ping('" ++ atom_to_list(Srv) ++ "')]),",
    {E, _} = start_erl("e_host", #{args => tls_args("good"), eval => Eval}),
    {ok, _} = wait_line(E, "PING pang", 0, 100),
    info("erl client refuses it too: ~ts", [[L || L <- interop_lib:lines_since(E, 0), string:find(L, "ostname") =/= nomatch]]),
    H = main_cnode(),
    Since = mark(H),
    P = puppet(?CN),
    cmd(P, {rpc, Srv, erlang, node, []}),
    {result, ok, {badrpc, nodedown}} = pmsg(P, "rpc result", 15000),
    expect_log(H, ["handshake with " ++ atom_to_list(Srv), "hostname mismatch"], Since).
