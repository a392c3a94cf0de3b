#!/usr/bin/env escript
%%! -noinput +Bd
%% A stand-in for build/cnode made of a plain erl node: same flags, same log lines, same registered processes
%% (echo, cnode_kv, cnode_ctl). Only for checking the interop harness itself (INTEROP_FAKE=1 sh interop/run.sh);
%% it proves nothing about cnode.
-mode(compile).

main(Args) ->
    Opts = parse(Args, #{name => "cnode@127.0.0.1", ticktime => 60}),
    EpmdPort = case Opts of
                   #{epmd_port := P} -> P;
                   _ -> case os:getenv("ERL_EPMD_PORT") of false -> "4369"; E -> E end
               end,
    os:putenv("ERL_EPMD_PORT", EpmdPort),
    case gen_tcp:connect({127,0,0,1}, list_to_integer(EpmdPort), [], 1000) of
        {ok, S} -> gen_tcp:close(S);
        _ ->
            Port = open_port({spawn_executable, os:find_executable("epmd")},
                             [{args, ["-port", EpmdPort]}, stderr_to_stdout]),
            {os_pid, EPid} = erlang:port_info(Port, os_pid),
            log("started epmd (pid ~b) on port ~s", [EPid, EpmdPort]),
            timer:sleep(300)
    end,
    Cookie = case Opts of
                 #{cookie := C} -> C;
                 _ -> read_cookie(maps:get(cookie_file, Opts, filename:join(os:getenv("HOME"), ".erlang.cookie")))
             end,
    {Name, Domain} = case Opts of
                         #{sname := SN} -> {SN, shortnames};
                         #{name := N} -> {N, longnames}
                     end,
    {ok, _} = net_kernel:start(list_to_atom(Name), #{name_domain => Domain,
                                                    net_ticktime => maps:get(ticktime, Opts)}),
    erlang:set_cookie(list_to_atom(Cookie)),
    logger:add_primary_filter(handshake, {fun handshake_filter/2, []}),
    register(echo, spawn(fun echo/0)),
    register(cnode_kv, spawn(fun() -> kv(#{}) end)),
    register(cnode_ctl, spawn(fun ctl/0)),
    spawn(fun() -> net_kernel:monitor_nodes(true, [nodedown_reason]), monitor_loop() end),
    [_, Host] = string:split(Name, "@"),
    {port, LPort, _} = erl_epmd:port_please(hd(string:split(Name, "@")), Host),
    log("node ~s ready: port ~b, creation ~b", [Name, LPort, erlang:system_info(creation)]),
    log("connect with: iex --name you@127.0.0.1 --cookie ~s", [Cookie]),
    receive after infinity -> ok end.

parse([], O) -> O;
parse(["--name", N | T], O) -> parse(T, O#{name => N});
parse(["--sname", N | T], O) -> parse(T, O#{sname => N});
parse(["--cookie", C | T], O) -> parse(T, O#{cookie => C});
parse(["--cookie-file", F | T], O) -> parse(T, O#{cookie_file => F});
parse(["--epmd-port", P | T], O) -> parse(T, O#{epmd_port => P});
parse(["--listen", _ | T], O) -> parse(T, O);
parse(["--ticktime", S | T], O) -> parse(T, O#{ticktime => list_to_integer(S)}).

read_cookie(F) ->
    case file:read_file(F) of
        {ok, B} -> string:trim(binary_to_list(B));
        _ ->
            C = [$A + rand:uniform(26) - 1 || _ <- lists:seq(1, 20)],
            ok = file:write_file(F, C),
            ok = file:change_mode(F, 8#400),
            C
    end.

log(F, A) -> io:format("cnode: " ++ F ++ "~n", A).

handshake_filter(#{msg := Msg} = E, _) ->
    Text = case Msg of
               {string, S} -> unicode:characters_to_list(S);
               {report, R} -> lists:flatten(io_lib:format("~p", [R]));
               {F, A} -> lists:flatten(io_lib:format(F, A))
           end,
    case string:find(Text, "Connection attempt from") of
        nomatch -> E;
        _ -> log("handshake with ? failed: bad cookie (~s)", [string:trim(Text)]), stop
    end.

echo() ->
    Bug = os:getenv("INTEROP_FAKE_BUG"),           % to see the suite fail: "bitstring" or "crash"
    receive
        {From, T} when Bug =:= "bitstring", is_bitstring(T), not is_binary(T) -> From ! <<T/bitstring, 1:1>>;
        {From, T} when Bug =:= "crash", is_tuple(T), tuple_size(T) > 255 -> From ! T, erlang:halt(3);
        {From, T} -> From ! T;
        _ -> ok
    end,
    echo().

kv(M) ->
    receive
        {'$gen_call', From, {put, K, V}} -> gen:reply(From, ok), kv(M#{K => V});
        {'$gen_call', From, {get, K}} ->
            gen:reply(From, case M of #{K := V} -> {ok, V}; _ -> error end), kv(M);
        _ -> kv(M)
    end.

ctl() ->
    receive
        {From, Ref, {send, Dest, Msg}} ->
            N = case Dest of {_, Nd} -> Nd; P when is_pid(P) -> node(P) end,
            case N =:= node() orelse net_kernel:connect_node(N) of
                true -> ok;
                _ -> log("handshake with ~p failed: cookie mismatch (peer closed)", [N])
            end,
            Dest ! Msg,
            From ! {Ref, ok};
        {From, Ref, nodes} -> From ! {Ref, nodes()};
        _ -> ok
    end,
    ctl().

monitor_loop() ->
    receive
        {nodeup, N, _} -> log("nodeup ~s", [N]);
        {nodedown, N, Info} -> log("nodedown ~s: ~p", [N, proplists:get_value(nodedown_reason, Info)])
    end,
    monitor_loop().
