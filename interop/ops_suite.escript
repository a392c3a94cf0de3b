#!/usr/bin/env escript
%%! -hidden -connect_all false
%% Operations (issue 20): the HTTP endpoint (/healthz, /readyz, /metrics parsed as Prometheus text; methods, paths
%% and malformed requests), SIGTERM's graceful shutdown (/readyz 503 within 100 ms, exit 0 after the drain, Horde
%% children handed over between two C nodes with nothing lost, global names released, a second signal stops at
%% once), configuration from CNODE_* and RELEASE_* variables (an env-only node is reachable; bad values exit 2 naming
%% the variable), the entrypoint run the way a pod runs it (its own network namespace and address, a pod's
%% environment, reached from an erl node), and the deploy/k8s manifests and Dockerfile checked as YAML. This node
%% (to@127.0.0.1) is hidden. Run by interop/run.sh with --cnode BIN --repo DIR --build DIR --epmd-port P --free-port
%% P2 --tmp DIR --pidfile F. Output: `ok name` / `FAIL name: reason`, then `ops_suite: N passed, N failed`.
-mode(compile).
-export([main/1]).

-import(interop_lib, [cfg/1, info/2, step/1, fail/2, flat/2, now_ms/0, start_cnode/3, start_ext/4, wait_line/4,
                      wait_exit/2, signal/2, base_env/0, cnode_cmd/1, wait_until/3, tail/2]).

-define(SUP, 'Elixir.MyApp.Sup').
-define(REG, 'Elixir.MyApp.Registry').
-define(COUNTER, 'Elixir.CNode.Demo.Counter').
-define(T, 5000).

tests() ->
    No = #{shared_cnode => false},
    [{endpoints_and_metrics, 40, fun t_endpoints/0, No},
     {methods_and_paths, 20, fun t_methods/0, No},
     {malformed_requests, 40, fun t_malformed/0, No},
     {env_only_node, 30, fun t_env_only/0, No},
     {release_fallbacks, 30, fun t_release/0, No},
     {bad_values_exit_2, 60, fun t_bad_values/0, No},
     {sigterm_drain, 30, fun t_sigterm_drain/0, No},
     {second_signal_stops_at_once, 20, fun t_second_signal/0, No},
     {horde_handover_on_sigterm, 60, fun t_handover/0, No},
     {pod_in_network_namespace, 60, fun t_pod/0, No},
     {k8s_manifests_and_dockerfile, 20, fun t_manifests/0, No}].

main(Args) ->
    Tmp = arg_value("--tmp", Args),
    Lib = filename:join(filename:dirname(escript:script_name()), "interop_lib.erl"),
    case Tmp =/= undefined andalso compile:file(Lib, [{outdir, Tmp}, return_errors]) of
        {ok, _} -> true = code:add_patha(Tmp);
        Err -> io:format("FAIL setup: cannot compile ~ts into ~p: ~p~nops_suite: 0 passed, 1 failed~n",
                         [Lib, Tmp, Err]),
               halt(1)
    end,
    interop_lib:main(Args, "ops_suite", [T || T <- tests(), runnable(element(1, T))],
                     #{node => 'to@127.0.0.1', budget_ms => 280000, fail_logs => ["cnode", "erl", "pod"]}).

%% The pod test needs root and iproute2, the manifest test python3-yaml (the Makefile's PKGS has both; the OTP
%% matrix's chroots do not): without them each is skipped, saying why.
runnable(pod_in_network_namespace) ->
    skip_unless(os:find_executable("ip") =/= false andalso string:trim(os:cmd("id -u")) =:= "0",
                pod_in_network_namespace, "needs root and iproute2's ip");
runnable(k8s_manifests_and_dockerfile) ->
    skip_unless(string:trim(os:cmd("python3 -c 'import yaml' 2>&1 && echo yes")) =:= "yes",
                k8s_manifests_and_dockerfile, "needs python3-yaml");
runnable(_) -> true.

skip_unless(true, _, _) -> true;
skip_unless(false, Name, Why) -> io:format("  # skipped ~ts: ~ts~n", [Name, Why]), false.

arg_value(_, []) -> undefined;
arg_value(K, [K, V | _]) -> V;
arg_value(K, [_ | T]) -> arg_value(K, T).

%% ---- HTTP by hand (so malformed requests can be sent too) -------------------------------------------------------

%% Sends Bytes to Host:Port and reads until the server closes: {Status, Headers (lower-case names), Body},
%% {closed, Bytes} when what came back is no HTTP response (nothing at all included), or {error, Why}.
raw(Port, Bytes) -> raw({127,0,0,1}, Port, Bytes).
raw(Host, Port, Bytes) ->
    case gen_tcp:connect(Host, Port, [binary, {active, false}], ?T) of
        {ok, S} ->
            _ = gen_tcp:send(S, Bytes),
            R = recv_all(S, <<>>, now_ms() + ?T),
            gen_tcp:close(S),
            parse_response(R);
        {error, Why} -> {error, Why}
    end.

recv_all(S, Acc, Deadline) ->
    case gen_tcp:recv(S, 0, max(1, Deadline - now_ms())) of
        {ok, B} -> recv_all(S, <<Acc/binary, B/binary>>, Deadline);
        {error, _} -> Acc
    end.

parse_response(Bin) ->
    case binary:split(Bin, <<"\r\n\r\n">>) of
        [Head, Body] ->
            [Status | Hs] = binary:split(Head, <<"\r\n">>, [global]),
            case re:run(Status, "^HTTP/1\\.[01] (\\d{3})", [{capture, all_but_first, binary}]) of
                {match, [Code]} ->
                    {binary_to_integer(Code),
                     [{string:lowercase(string:trim(K)), string:trim(V)}
                      || H <- Hs, [K, V] <- [binary:split(H, <<":">>)]], Body};
                nomatch -> {closed, Bin}
            end;
        _ -> {closed, Bin}
    end.

get(Port, Path) -> get({127,0,0,1}, Port, Path).
get(Host, Port, Path) ->
    raw(Host, Port, ["GET ", Path, " HTTP/1.1\r\nHost: cnode\r\nConnection: close\r\n\r\n"]).

status(Port, Path) -> status({127,0,0,1}, Port, Path).
status(Host, Port, Path) ->
    case get(Host, Port, Path) of
        {Code, _, _} when is_integer(Code) -> Code;
        Other -> Other
    end.

expect(Port, Path, Want) ->
    case get(Port, Path) of
        {Want, Hs, Body} -> {Hs, Body};
        Other -> fail("GET ~ts: want ~b, got ~0tp", [Path, Want, Other])
    end.

free_port() ->
    {ok, S} = gen_tcp:listen(0, [{ip, {127,0,0,1}}, {reuseaddr, false}]),
    {ok, P} = inet:port(S),
    gen_tcp:close(S),
    P.

%% A cnode serving HTTP on 127.0.0.1; returns {Handle, HttpPort}.
http_cnode(Proc, Name, Extra) ->
    HP = free_port(),
    {H, _} = start_cnode(Proc, Name, ["--http-port", integer_to_list(HP), "--http-addr", "127.0.0.1" | Extra]),
    wait_until(fun() -> status(HP, "/readyz") =:= 200 end, 10000, "ready")
        orelse fail("~ts: /readyz never said 200: ~0tp", [Name, get(HP, "/readyz")]),
    {H, HP}.

%% ---- Prometheus' text format (version 0.0.4), checked line by line ----------------------------------------------

-define(NAME, "[a-zA-Z_:][a-zA-Z0-9_:]*").
-define(LABEL, "[a-zA-Z_][a-zA-Z0-9_]*=\"(?:[^\"\\\\\\n]|\\\\[\\\\\"n])*\"").
-define(VALUE, "(?:[-+]?(?:[0-9]+(?:\\.[0-9]*)?|\\.[0-9]+)(?:[eE][-+]?[0-9]+)?|NaN|[-+]Inf)").

%% #{Family => {Type, [{Name, #{Label => Value}, Number}]}}, or fail naming the first bad line.
parse_prom(Bin) ->
    binary:last(Bin) =:= $\n orelse fail("/metrics does not end with a newline", []),
    Lines = [L || L <- binary:split(Bin, <<"\n">>, [global]), L =/= <<>>],
    {Fams, _} = lists:foldl(fun prom_line/2, {#{}, undefined}, Lines),
    maps:size(Fams) > 0 orelse fail("/metrics has no families", []),
    Fams.

prom_line(<<"# HELP ", Rest/binary>>, {F, Cur}) ->
    match(Rest, "^" ?NAME " .*$", "HELP"),
    {F, Cur};
prom_line(<<"# TYPE ", Rest/binary>> = L, {F, _}) ->
    {match, [Name, Type]} = match(Rest, "^(" ?NAME ") (counter|gauge|histogram|summary|untyped)$", "TYPE"),
    maps:is_key(Name, F) andalso fail("family ~ts declared twice: ~ts", [Name, L]),
    {F#{Name => {Type, []}}, Name};
prom_line(<<"#", _/binary>>, Acc) -> Acc;
prom_line(L, {F, Cur}) ->
    {match, [Name, Labels, Value]} =
        match(L, "^(" ?NAME ")((?:\\{(?:" ?LABEL "(?:," ?LABEL ")*)?\\})?) (" ?VALUE ")(?: -?[0-9]+)?$", "sample"),
    Cur =/= undefined orelse fail("sample before any TYPE: ~ts", [L]),
    Name =:= Cur orelse fail("sample ~ts outside its family (current: ~ts)", [Name, Cur]),
    {Type, Samples} = maps:get(Cur, F),
    {F#{Cur => {Type, Samples ++ [{Name, labels(Labels), number(Value)}]}}, Cur}.

match(Bin, Re, What) ->
    case re:run(Bin, Re, [{capture, all_but_first, binary}, unicode]) of
        nomatch -> fail("bad ~ts line in /metrics: ~ts", [What, Bin]);
        M -> M
    end.

labels(<<>>) -> #{};
labels(L) ->
    {match, Ps} = re:run(L, "([a-zA-Z_][a-zA-Z0-9_]*)=\"((?:[^\"\\\\]|\\\\.)*)\"", [global, {capture, all_but_first, binary}]),
    maps:from_list([{K, V} || [K, V] <- Ps]).

number(<<"NaN">>) -> nan;
number(<<"+Inf">>) -> inf;
number(<<"-Inf">>) -> ninf;
number(B) ->
    S = binary_to_list(B),
    try list_to_integer(S) catch _:_ -> list_to_float(fix_float(S)) end.

fix_float(S) ->
    case {lists:member($., S), lists:member($e, S) orelse lists:member($E, S)} of
        {true, _} -> S;
        {false, true} -> [M, E] = string:split(string:lowercase(S), "e"), M ++ ".0e" ++ E;
        {false, false} -> S ++ ".0"
    end.

%% The value of Family's sample whose labels include Want (a map); fails when there is none.
sample(Fams, Family, Want) ->
    {_, Ss} = maps:get(Family, Fams, {none, []}),
    case [V || {_, L, V} <- Ss, maps:with(maps:keys(Want), L) =:= Want] of
        [V | _] -> V;
        [] -> fail("no sample ~ts~0tp in /metrics", [Family, Want])
    end.

metrics(Port) ->
    {Hs, Body} = expect(Port, "/metrics", 200),
    CT = proplists:get_value(<<"content-type">>, Hs),
    binary:match(CT, <<"text/plain; version=0.0.4">>) =/= nomatch orelse fail("/metrics content-type ~ts", [CT]),
    parse_prom(Body).

%% ---- tests -----------------------------------------------------------------------------------------------------

%% /healthz and /readyz answer; /metrics parses as Prometheus text, every name cnode_, and counts what happened:
%% this node's connection and traffic, a refused handshake (a wrong cookie) by its reason, processes.
t_endpoints() ->
    Name = "cnode_http@127.0.0.1",
    {_H, HP} = http_cnode("cnode_http", Name, []),
    {_, <<"ok\n">>} = expect(HP, "/healthz", 200),
    {_, <<"ready\n">>} = expect(HP, "/readyz", 200),
    step("traffic from this node, and a handshake with the wrong cookie"),
    Node = list_to_atom(Name),
    pong = net_adm:ping(Node),
    Ref = make_ref(),
    {echo, Node} ! {self(), Ref},
    receive Ref -> ok after ?T -> fail("no echo", []) end,
    ok = gen_server:call({cnode_kv, Node}, {put, ops, Ref}, ?T),
    Bad = os:cmd(flat("ERL_EPMD_PORT=~ts erl -noshell -name wrong@127.0.0.1 -setcookie not_the_cookie "
                      "-eval 'io:format(\"~~p~~n\", [net_adm:ping(list_to_atom(\"~ts\"))]), halt().' 2>&1",
                      [cfg('epmd-port'), Name])),
    info("ping with the wrong cookie: ~ts", [string:trim(Bad)]),
    step("/metrics"),
    F = wait_metrics(HP, fun(F) -> sample(F, <<"cnode_handshake_failures_total">>, #{<<"reason">> => <<"cookie">>}) >= 1 end),
    [binary:part(N, 0, 6) =:= <<"cnode_">> orelse fail("metric ~ts lacks the cnode_ prefix", [N]) || N <- maps:keys(F)],
    info("~b families", [maps:size(F)]),
    Me = atom_to_binary(node()),
    true = sample(F, <<"cnode_connections">>, #{<<"state">> => <<"up">>}) >= 1,
    true = sample(F, <<"cnode_peer_bytes_in_total">>, #{<<"peer">> => Me}) > 0,
    true = sample(F, <<"cnode_peer_messages_in_total">>, #{<<"peer">> => Me}) >= 2,
    true = sample(F, <<"cnode_peer_messages_out_total">>, #{<<"peer">> => Me}) >= 2,
    {_, QS} = maps:get(<<"cnode_peer_queue_bytes">>, F),
    [<<"hidden">>] = [maps:get(<<"type">>, L) || {_, L, _} <- QS, maps:get(<<"peer">>, L) =:= Me],
    true = sample(F, <<"cnode_messages_in_total">>, #{}) >= 2,
    true = sample(F, <<"cnode_bytes_out_total">>, #{}) > 0,
    true = sample(F, <<"cnode_processes">>, #{}) >= 4,
    _ = sample(F, <<"cnode_mailbox_messages">>, #{}),
    _ = sample(F, <<"cnode_global_names">>, #{}),
    _ = sample(F, <<"cnode_dist_queue_bytes">>, #{}),
    _ = sample(F, <<"cnode_dist_busy_total">>, #{}),
    1 = sample(F, <<"cnode_info">>, #{<<"node">> => list_to_binary(Name)}),
    9 = length(element(2, maps:get(<<"cnode_handshake_failures_total">>, F))),
    {<<"counter">>, _} = maps:get(<<"cnode_bytes_in_total">>, F),
    {<<"gauge">>, _} = maps:get(<<"cnode_processes">>, F),
    ok.

wait_metrics(HP, Pred) ->
    Deadline = now_ms() + 5000,
    wait_metrics(HP, Pred, Deadline).
wait_metrics(HP, Pred, Deadline) ->
    F = metrics(HP),
    Late = now_ms() >= Deadline,
    case catch Pred(F) of
        true -> F;
        _ when not Late -> timer:sleep(100), wait_metrics(HP, Pred, Deadline);
        R -> fail("/metrics never showed what was expected (~0tp)", [R])
    end.

%% HEAD answers without a body; other methods 405 with Allow; unknown paths 404.
t_methods() ->
    {_H, HP} = http_cnode("cnode_methods", "cnode_methods@127.0.0.1", []),
    {200, _, <<>>} = raw(HP, "HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    {405, Hs, _} = raw(HP, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"),
    <<"GET, HEAD">> = proplists:get_value(<<"allow">>, Hs),
    {405, _, _} = raw(HP, "DELETE /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    {404, _, _} = get(HP, "/nope"),
    {404, _, _} = get(HP, "/healthz/extra"),
    {200, _, <<"ok\n">>} = raw(HP, "GET /healthz HTTP/1.0\r\n\r\n"),
    ok.

%% Garbage, oversized headers, bad request lines, truncated requests and idle connections get an error or a close;
%% the node lives on and still answers.
t_malformed() ->
    {H, HP} = http_cnode("cnode_bad", "cnode_bad@127.0.0.1", []),
    Cases = [{garbage, <<22, 3, 1, 0, 200, "\x00\xff garbage\r\n\r\n">>},
             {no_version, "GET /healthz\r\n\r\n"},
             {bad_version, "GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n"},
             {header_without_colon, "GET /healthz HTTP/1.1\r\nHost: x\r\nthis is no header\r\n\r\n"},
             {huge_header, ["GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ", lists:duplicate(64 * 1024, $a), "\r\n\r\n"]},
             {many_headers, ["GET /healthz HTTP/1.1\r\nHost: x\r\n",
                             [["X-H", integer_to_list(I), ": v\r\n"] || I <- lists:seq(1, 4000)], "\r\n"]},
             {huge_url, ["GET /", lists:duplicate(40000, $u), " HTTP/1.1\r\nHost: x\r\n\r\n"]},
             {http2_preface, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
             {truncated, "GET /healthz HTTP/1.1\r\nHo"},
             {bad_content_length, "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"},
             {nul_in_path, "GET /heal\x00thz HTTP/1.1\r\nHost: x\r\n\r\n"}],
    [begin
         R = raw(HP, Bytes),
         info("~ts: ~ts", [Name, case R of
                                     {C, _, _} when is_integer(C) -> integer_to_list(C);
                                     {closed, B} -> flat("closed after ~b bytes", [byte_size(B)]);
                                     {error, E} -> flat("error ~p", [E])
                                 end]),
         case R of
             {Code, _, _} when is_integer(Code), Code >= 400 -> ok;
             {closed, _} -> ok;
             Other -> fail("~ts: want a 4xx/5xx or a close, got ~0tp", [Name, Other])
         end,
         {_, <<"ok\n">>} = expect(HP, "/healthz", 200)
     end || {Name, Bytes} <- Cases],
    step("100 idle connections (over the limit of 64), closed, then a request"),
    %% The endpoint once stalled here: MHD puts its listen socket back in its epoll set only at the start of a turn,
    %% and no turn came after the one that closed the 64 (http.c's run() now takes one more).
    [begin
         Idle = [S || _ <- lists:seq(1, 100), {ok, S} <- [gen_tcp:connect({127,0,0,1}, HP, [binary, {active, false}])]],
         timer:sleep(300),
         [gen_tcp:close(S) || S <- Idle],
         timer:sleep(300),
         T0 = now_ms(),
         wait_until(fun() -> status(HP, "/healthz") =:= 200 end, 3000, "healthz after idle connections")
             orelse fail("/healthz after 100 idle connections: ~0tp", [get(HP, "/healthz")]),
         info("round ~b: /healthz 200 ~b ms after the idle connections closed", [Round, now_ms() - T0])
     end || Round <- [1, 2]],
    running = interop_lib:status(H),
    ok.

%% A node configured by CNODE_* variables alone (no argument at all) starts, is reachable, serves HTTP, and takes a
%% repeatable flag's values separated by spaces; a flag given on the command line wins over its variable.
t_env_only() ->
    HP = free_port(),
    Name = "cnode_env@127.0.0.1",
    {Exe, Args} = cnode_cmd([]),
    Env = [{"CNODE_NAME", Name}, {"CNODE_COOKIE", atom_to_list(erlang:get_cookie())},
           {"CNODE_EPMD_PORT", cfg('epmd-port')}, {"CNODE_LISTEN", "0"}, {"CNODE_HTTP_PORT", integer_to_list(HP)},
           {"CNODE_HTTP_ADDR", "127.0.0.1"}, {"CNODE_HORDE_REGISTRY", "MyApp.Registry  Other.Registry"},
           {"CNODE_VERBOSE", "false"}, {"CNODE_HIDDEN", "false"} | base_env()],
    H = start_ext("cnode_env", Exe, Args, Env),
    {ok, _} = wait_line(H, "cnode: node " ++ Name ++ " ready", 0, 15000),
    reachable(Name),
    wait_until(fun() -> status(HP, "/readyz") =:= 200 end, 10000, "ready") orelse fail("not ready", []),
    F = metrics(HP),
    true = sample(F, <<"cnode_horde_registry_keys">>, #{<<"registry">> => <<"Elixir.MyApp.Registry">>}) >= 1,
    true = sample(F, <<"cnode_horde_registry_keys">>, #{<<"registry">> => <<"Elixir.Other.Registry">>}) >= 1,
    step("flags win: --ticktime 30 with CNODE_TICKTIME=soon starts"),
    {Exe2, Args2} = cnode_cmd(["--ticktime", "30", "--name", "cnode_env2@127.0.0.1"]),
    Env2 = [{"CNODE_TICKTIME", "soon"}, {"CNODE_NAME", "ignored@127.0.0.1"}, {"CNODE_HTTP_PORT", false}
            | [KV || KV = {K, _} <- Env, K =/= "CNODE_HTTP_PORT"]],
    H2 = start_ext("cnode_env2", Exe2, Args2, Env2),
    {ok, _} = wait_line(H2, "cnode: node cnode_env2@127.0.0.1 ready", 0, 15000),
    reachable("cnode_env2@127.0.0.1"),
    ok.

%% The Elixir release's variables as fallbacks: RELEASE_NODE (with RELEASE_DISTRIBUTION=name) and RELEASE_COOKIE.
t_release() ->
    {Exe, Args} = cnode_cmd(["--listen", "0", "--epmd-port", cfg('epmd-port')]),
    Env = [{"RELEASE_NODE", "cnode_rel@127.0.0.1"}, {"RELEASE_DISTRIBUTION", "name"},
           {"RELEASE_COOKIE", atom_to_list(erlang:get_cookie())} | base_env()],
    H = start_ext("cnode_rel", Exe, Args, Env),
    {ok, _} = wait_line(H, "cnode: node cnode_rel@127.0.0.1 ready", 0, 15000),
    reachable("cnode_rel@127.0.0.1").

reachable(Name) ->
    Node = list_to_atom(Name),
    wait_until(fun() -> net_adm:ping(Node) =:= pong end, 5000, "ping") orelse fail("~ts does not answer ping", [Name]),
    Ref = make_ref(),
    {echo, Node} ! {self(), Ref},
    receive Ref -> ok after ?T -> fail("no echo from ~ts", [Name]) end,
    ok = gen_server:call({cnode_kv, Node}, {put, env, Ref}, ?T),
    {ok, Ref} = gen_server:call({cnode_kv, Node}, {get, env}, ?T),
    ok.

%% Every bad value stops the program before anything starts: status 2 and one line naming the variable (or flag)
%% and the value.
t_bad_values() ->
    Cases = [{[{"CNODE_TICKTIME", "soon"}], [], "CNODE_TICKTIME=soon"},
             {[], ["--ticktime", "soon"], "--ticktime soon"},
             {[{"CNODE_EPMD_PORT", "70000"}], [], "CNODE_EPMD_PORT=70000"},
             {[{"CNODE_HTTP_PORT", "http"}], [], "CNODE_HTTP_PORT=http"},
             {[{"CNODE_HTTP_ADDR", "localhost"}], [], "CNODE_HTTP_ADDR=localhost"},
             {[{"CNODE_DRAIN_DELAY", "-1"}], [], "CNODE_DRAIN_DELAY=-1"},
             {[{"CNODE_SHUTDOWN_TIMEOUT", "0"}], [], "CNODE_SHUTDOWN_TIMEOUT=0"},
             {[{"CNODE_HIDDEN", "maybe"}], [], "CNODE_HIDDEN=maybe"},
             {[{"CNODE_LISTEN_ADDR", "localhost"}], [], "CNODE_LISTEN_ADDR=localhost"},
             {[{"CNODE_LISTEN", "x"}], [], "CNODE_LISTEN=x"},
             {[{"CNODE_PROTO_DIST", "inet_udp"}], [], "CNODE_PROTO_DIST=inet_udp"},
             {[{"CNODE_CONNECT_ALL", "perhaps"}], [], "CNODE_CONNECT_ALL=perhaps"},
             {[{"CNODE_LISTEN_MAX", "7"}], [], "CNODE_LISTEN_MAX=7"},
             {[], ["--listen-min", "9", "--listen-max", "8"], "--listen-max 8"},
             {[{"ERL_EPMD_PORT", "4369x"}], [], "ERL_EPMD_PORT=4369x"},
             {[{"CNODE_OTP_RELEASE", "12"}], [], "CNODE_OTP_RELEASE=12"},
             {[{"CNODE_NAME", "nohost"}], [], "CNODE_NAME=nohost"},
             {[{"CNODE_COOKIE_FILE", "/nonexistent/cookie"}], [], "CNODE_COOKIE_FILE=/nonexistent/cookie"},
             {[{"RELEASE_DISTRIBUTION", "none"}], [], "RELEASE_DISTRIBUTION=none"},
             {[{"RELEASE_NODE", "nohost"}, {"RELEASE_DISTRIBUTION", "name"}], [], "RELEASE_NODE=nohost"},
             {[{"CNODE_TICKTIME", "60"}, {"CNODE_HTTP_PORT", "99999"}], [], "CNODE_HTTP_PORT=99999"}],
    [begin
         {Exe, Args} = cnode_cmd(Flags), % the EPMD port from ERL_EPMD_PORT, so CNODE_EPMD_PORT counts
         Proc = flat("cnode_bad~b", [I]),
         H = start_ext(Proc, Exe, Args, Env ++ [KV || KV = {K, _} <- base_env(), not lists:keymember(K, 1, Env)]),
         case wait_exit(H, 5000) of
             {ok, 2} -> ok;
             R -> fail("~ts: want exit status 2, got ~0tp: ~ts", [Want, R, tail(H, 3)])
         end,
         Lines = [L || L <- interop_lib:lines_since(H, 0), not lists:prefix("===", L)],
         case Lines of
             [L] -> lists:prefix("cnode: " ++ Want ++ ": expected ", L)
                        orelse fail("~ts: the line is ~ts", [Want, L]),
                    info("~ts", [L]);
             _ -> fail("~ts: want one line, got ~p", [Want, Lines])
         end
     end || {I, {Env, Flags, Want}} <- lists:zip(lists:seq(1, length(Cases)), Cases)],
    ok.

%% SIGTERM: /readyz 503 within 100 ms while /healthz stays 200, each step logged with its time, a global name of
%% the node released, exit 0 after the 2 s drain.
t_sigterm_drain() ->
    Name = "cnode_term@127.0.0.1",
    {H, HP} = http_cnode("cnode_term", Name, ["--drain-delay", "2", "--shutdown-timeout", "10"]),
    Node = list_to_atom(Name),
    {ok, Kv} = gen_server:call({cnode_ctl, Node}, {start_kv, ops_kv}, ?T),
    yes = gen_server:call({cnode_ctl, Node}, {global_register, ops_global_name, Kv}, ?T),
    T0 = term(H),
    NotReady = poll_503(HP, T0),
    info("/readyz 503 ~b ms after SIGTERM", [NotReady]),
    NotReady =< 100 orelse fail("/readyz turned 503 only after ~b ms", [NotReady]),
    {_, <<"ok\n">>} = expect(HP, "/healthz", 200),
    {_, <<"not ready: shutting down\n">>} = expect(HP, "/readyz", 503),
    case wait_exit(H, 15000) of
        {ok, 0} -> ok;
        R -> fail("after SIGTERM: ~0tp: ~ts", [R, tail(H, 10)])
    end,
    Took = now_ms() - T0,
    info("exited 0 after ~b ms", [Took]),
    %% T0 is taken after kill returned (term/1): allow the shell's exit, the log's +2.0 s says the rest.
    Took >= 1900 orelse fail("exited after ~b ms, before the 2 s drain", [Took]),
    Log = interop_lib:lines_since(H, 0),
    [lists:any(fun(L) -> string:find(L, S) =/= nomatch end, Log) orelse fail("no log line ~ts", [S])
     || S <- ["shutdown +0.0", "draining for 2 s", "shutdown +2.0", "handing Horde children over",
              "dropping Horde registrations", "releasing 1 global name", "releasing global names: done",
              "closing connections and stopping"]],
    ok.

%% Sends SIGTERM; returns when it was sent: os:cmd's `kill` has run by the time it returns (the shell it starts takes
%% tens of ms, more under ASan, so the time is taken after it, not before). test_sup_cluster measures the same with
%% kill(2) itself.
term(H) ->
    signal(H, "TERM"),
    now_ms().

poll_503(HP, T0) ->
    case status(HP, "/readyz") of
        503 -> now_ms() - T0;
        200 -> case now_ms() - T0 > 2000 of
                   true -> fail("/readyz still 200 2 s after SIGTERM", []);
                   false -> timer:sleep(2), poll_503(HP, T0)
               end;
        Other -> fail("/readyz after SIGTERM: ~0tp", [Other])
    end.

%% A second SIGTERM (or a SIGINT) during the drain stops at once.
t_second_signal() ->
    [begin
         {H, HP} = http_cnode("cnode_twice_" ++ Sig, "cnode_twice_" ++ string:lowercase(Sig) ++ "@127.0.0.1",
                              ["--drain-delay", "30"]),
         T0 = now_ms(),
         signal(H, "TERM"),
         _ = poll_503(HP, T0),
         signal(H, Sig),
         case wait_exit(H, 5000) of
             {ok, 0} -> ok;
             R -> fail("after SIGTERM then SIG~ts: ~0tp: ~ts", [Sig, R, tail(H, 6)])
         end,
         info("SIGTERM, then SIG~ts: exited 0 after ~b ms", [Sig, now_ms() - T0])
     end || Sig <- ["TERM", "INT"]],
    ok.

%% Two C nodes in one Horde.DynamicSupervisor; 24 permanent children started through the first; SIGTERM to the
%% second (1 s drain): /readyz 503 at once, exit 0 after the drain, and all 24 run on the first, each answering.
t_handover() ->
    N1 = 'cnode_ho1@127.0.0.1', N2 = 'cnode_ho2@127.0.0.1',
    {_H1, _} = start_cnode("cnode_ho1", atom_to_list(N1), ["--horde-supervisor", "MyApp.Sup"]),
    {H2, HP2} = http_cnode("cnode_ho2", atom_to_list(N2), ["--horde-supervisor", "MyApp.Sup", "--drain-delay", "1"]),
    ok = gen_server:call({cnode_ctl, N1}, {send, {nobody, N2}, hello}, ?T),
    Alive = fun() -> alive_members(N1) =:= 2 andalso alive_members(N2) =:= 2 end,
    wait_until(Alive, 10000, "members") orelse fail("the two members never met: ~0tp", [crdt_read(N1)]),
    step("24 children through cnode_ho1"),
    Spec = fun(I) -> #{id => I, start => {?COUNTER, start_link, [[I]]}, restart => permanent, cnode => true} end,
    Pids = [begin
                {ok, P} = gen_server:call({cnode_ctl, N1}, {horde_sup_start_child, ?SUP, Spec(I)}, ?T),
                P
            end || I <- lists:seq(1, 24)],
    On2 = length([P || P <- Pids, node(P) =:= N2]),
    info("~b of 24 on cnode_ho2", [On2]),
    On2 > 0 orelse fail("no child on cnode_ho2", []),
    F = metrics(HP2),
    On2 = sample(F, <<"cnode_horde_supervisor_children">>, #{<<"supervisor">> => atom_to_binary(?SUP)}),
    1 = sample(F, <<"cnode_crdt_synced">>, #{<<"member">> => atom_to_binary(?SUP)}),
    T0 = term(H2),
    NotReady = poll_503(HP2, T0),
    NotReady =< 100 orelse fail("/readyz turned 503 only after ~b ms", [NotReady]),
    case wait_exit(H2, 20000) of
        {ok, 0} -> ok;
        R -> fail("cnode_ho2 after SIGTERM: ~0tp: ~ts", [R, tail(H2, 10)])
    end,
    Took = now_ms() - T0,
    Took >= 900 orelse fail("cnode_ho2 exited after ~b ms, before its drain", [Took]),
    lists:any(fun(L) -> string:find(L, "shutdown +1.0") =/= nomatch end, interop_lib:lines_since(H2, 0))
        orelse fail("cnode_ho2's log has no step at +1.0 s (after the drain)", []),
    step("all 24 on cnode_ho1"),
    Count = fun() -> proplists:get_value(active, gen_server:call({cnode_ctl, N1}, {horde_sup_count, ?SUP}, ?T)) end,
    wait_until(fun() -> Count() =:= 24 end, 10000, "24 on cnode_ho1")
        orelse fail("cnode_ho1 runs ~0tp children, want 24", [Count()]),
    Kids = gen_server:call({cnode_ctl, N1}, {horde_sup_which_children, ?SUP}, ?T),
    Ids = lists:sort([gen_server:call(P, get, ?T) || {_, P, _, _} <- Kids]),
    Ids =:= lists:seq(1, 24) orelse fail("the children answer ~0tp", [Ids]),
    info("SIGTERM: /readyz 503 after ~b ms, exit 0 after ~b ms; all 24 children answer on cnode_ho1", [NotReady, Took]),
    ok.

%% Members whose member_node_info in N's CRDT says alive.
alive_members(N) ->
    length([1 || {{member_node_info, _}, #{status := alive}} <- maps:to_list(crdt_read(N))]).

crdt_read(N) ->
    case catch gen_server:call({'Elixir.MyApp.Sup.Crdt', N}, read, ?T) of
        M when is_map(M) -> M;
        _ -> #{}
    end.

%% The entrypoint as a pod runs it: its own network namespace and address (a veth pair to this host), nothing in
%% its environment but what the manifest gives (CNODE_NAME=cnode@$(POD_IP) with POD_IP, the cookie, the HTTP port;
%% the EPMD port is the suite's, a pod's 4369 being taken by nothing else there either), reached over HTTP and from
%% an erl node on the host side's address.
t_pod() ->
    Tag = integer_to_list(list_to_integer(os:getpid()) rem 200 + 20),
    Ns = "cnops" ++ Tag, Vh = "cnvh" ++ Tag, Vp = "cnvp" ++ Tag,
    HostIp = "10.231." ++ Tag ++ ".1", PodIp = "10.231." ++ Tag ++ ".2",
    Sh = fun(C) -> os:cmd(C ++ " 2>&1; echo \"rc=$?\"") end,
    Ok = fun(C) -> R = Sh(C), lists:suffix("rc=0\n", R) orelse fail("~ts: ~ts", [C, R]) end,
    case Sh("ip netns add " ++ Ns) of
        "rc=0\n" -> ok;
        Why -> fail("cannot create a network namespace (root and iproute2 needed): ~ts", [Why])
    end,
    try
        [Ok(C) || C <- ["ip link add " ++ Vh ++ " type veth peer name " ++ Vp,
                        "ip link set " ++ Vp ++ " netns " ++ Ns,
                        "ip addr add " ++ HostIp ++ "/24 dev " ++ Vh, "ip link set " ++ Vh ++ " up",
                        "ip netns exec " ++ Ns ++ " ip addr add " ++ PodIp ++ "/24 dev " ++ Vp,
                        "ip netns exec " ++ Ns ++ " ip link set " ++ Vp ++ " up",
                        "ip netns exec " ++ Ns ++ " ip link set lo up"]],
        Cookie = "pod-cookie-" ++ Tag,
        PodEnv = ["POD_IP=" ++ PodIp, "CNODE_NAME=cnode@" ++ PodIp, "CNODE_COOKIE=" ++ Cookie,
                  "CNODE_HTTP_PORT=8080", "CNODE_DRAIN_DELAY=1", "CNODE_SHUTDOWN_TIMEOUT=10",
                  "CNODE_EPMD_PORT=" ++ cfg('epmd-port'), "HOME=/tmp", "HOSTNAME=cnode-pod-" ++ Tag],
        Ip = os:find_executable("ip"),
        H = start_ext("pod_cnode", Ip, ["netns", "exec", Ns, "env", "-i" | PodEnv] ++ [cfg(cnode)], []),
        {ok, _} = wait_line(H, "cnode: node cnode@" ++ PodIp ++ " ready", 0, 15000),
        {ok, Addr} = inet:parse_address(PodIp),
        wait_until(fun() -> status(Addr, 8080, "/readyz") =:= 200 end, 10000, "pod ready")
            orelse fail("the pod's /readyz: ~0tp", [get(Addr, 8080, "/readyz")]),
        {200, _, <<"ok\n">>} = get(Addr, 8080, "/healthz"),
        step("an erl node on the host side reaches cnode@" ++ PodIp),
        Erl = os:cmd(flat("ERL_EPMD_PORT=~ts erl -noshell -name host@~ts -setcookie ~ts -eval '"
                          "N = '\"'\"'cnode@~ts'\"'\"', P = net_adm:ping(N), "
                          "R = (catch gen_server:call({cnode_kv, N}, {put, pod, 1}, 5000)), "
                          "io:format(\"~~p ~~p~~n\", [P, R]), halt().' 2>&1",
                          [cfg('epmd-port'), HostIp, Cookie, PodIp])),
        info("erl on ~ts: ~ts", [HostIp, string:trim(Erl)]),
        string:find(Erl, "pong ok") =/= nomatch orelse fail("erl on the host: ~ts", [Erl]),
        step("SIGTERM, as the kubelet sends it"),
        T0 = now_ms(),
        signal(H, "TERM"),
        503 = (fun W() -> case status(Addr, 8080, "/readyz") of
                              200 -> timer:sleep(5), W();
                              S -> S
                          end end)(),
        case wait_exit(H, 15000) of
            {ok, 0} -> info("the pod's cnode exited 0 after ~b ms", [now_ms() - T0]);
            R -> fail("the pod's cnode after SIGTERM: ~0tp: ~ts", [R, tail(H, 8)])
        end
    after
        os:cmd("ip netns del " ++ Ns ++ " 2>&1; ip link del " ++ Vh ++ " 2>/dev/null")
    end,
    ok.

%% deploy/k8s/*.yaml parse as YAML and hold what the issue asks of them; the Dockerfile is multi-stage, runs as a
%% non-root user on Debian 12 slim with cnode as entrypoint (interop/k8s_check.py).
t_manifests() ->
    Repo = cfg(repo),
    Out = os:cmd(flat("python3 '~ts/interop/k8s_check.py' '~ts' 2>&1; echo \"rc=$?\"", [Repo, Repo])),
    [info("~ts", [L]) || L <- string:split(string:trim(Out), "\n", all)],
    lists:suffix("rc=0\n", Out) orelse fail("k8s_check.py failed", []),
    ok.
