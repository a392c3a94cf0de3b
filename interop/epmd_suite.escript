#!/usr/bin/env escript
%%! -noinput
%% Interop tests of build/cnode-epmd against OTP: real erl nodes and OTP's own `epmd` client use it as they
%% would use OTP's epmd. Started by interop/run.sh with --cnode BIN --repo DIR --build DIR --epmd-port P
%% --free-port P2 --tmp DIR --pidfile F; run.sh's epmd (--epmd-port) is not touched: every cnode-epmd, epmd
%% and erl here runs on ports this suite picks. Every OS pid started is written to the pid file (+pid, and
%% -pid once it is gone) and killed by pid at the end of its test. Output: `ok name` / `FAIL name: reason`,
%% then `epmd_suite: N passed, N failed`.
-mode(compile).

-define(COOKIE, "epmdsuitecookie").

tests() ->
    [{erl_pair, 40, fun t_erl_pair/0},
     {kill_like_otp, 30, fun t_kill_like_otp/0},
     {stop_like_otp, 20, fun t_stop_like_otp/0},
     {cnode_found_by_erl, 40, fun t_cnode_found_by_erl/0},
     {embedded_in_cnode, 40, fun t_embedded/0},
     {daemon_and_env, 20, fun t_daemon_and_env/0}].

main(Args) ->
    Cfg = parse_args(Args, #{}),
    persistent_term:put(cfg, Cfg),
    ets:new(procs, [named_table, public, bag]),
    T0 = erlang:monotonic_time(millisecond),
    Results = [run(T) || T <- tests()],
    Passed = length([ok || ok <- Results]),
    Failed = length(Results) - Passed,
    io:format("  # epmd_suite took ~.1f s~n", [(erlang:monotonic_time(millisecond) - T0) / 1000]),
    io:format("epmd_suite: ~b passed, ~b failed~n", [Passed, Failed]),
    halt(case Failed of 0 -> 0; _ -> 1 end).

parse_args([], C) -> C;
parse_args(["--fake" | T], C) -> parse_args(T, C#{fake => true});
parse_args(["--" ++ K, V | T], C) -> parse_args(T, C#{list_to_atom(K) => V}).

cfg(K) -> maps:get(K, persistent_term:get(cfg)).

bin(Name) -> filename:join(cfg(build), Name).

run({Name, Timeout, Fun}) ->
    Self = self(),
    {Pid, Ref} = spawn_monitor(fun() -> put(test, Name), Fun(), Self ! {done, self()} end),
    R = receive
            {'DOWN', Ref, _, _, normal} -> ok;
            {'DOWN', Ref, _, _, {fail, Why}} -> {fail, Why};
            {'DOWN', Ref, _, _, Other} -> {fail, flat("crashed: ~tP", [Other, 25])}
        after Timeout * 1000 ->
                exit(Pid, kill),
                {fail, flat("timeout after ~b s", [Timeout])}
        end,
    cleanup(Name),
    case R of
        ok -> io:format("ok ~s~n", [Name]), ok;
        {fail, W} -> io:format("FAIL ~s: ~ts~n", [Name, oneline(W)]), failed
    end.

fail(F, A) -> exit({fail, flat(F, A)}).
flat(F, A) -> lists:flatten(io_lib:format(F, A)).
oneline(S) -> [case C of $\n -> $\s; _ -> C end || C <- lists:flatten(S)].
check(true, _, _) -> ok;
check(_, F, A) -> fail(F, A).

%% ---- external programs ------------------------------------------------------------------------------

pidfile(Sign, OsPid) ->
    file:write_file(cfg(pidfile), io_lib:format("~s~b epmd_suite~n", [Sign, OsPid]), [append]).

env(Extra) ->
    %% The epmd of run.sh is not ours to use here: ERL_EPMD_PORT is always set explicitly.
    [{"ERL_EPMD_ADDRESS", false}, {"ERL_EPMD_RELAXED_COMMAND_CHECK", false}, {"ERL_FLAGS", false},
     {"ERL_AFLAGS", false}, {"ERL_ZFLAGS", false} | Extra].

%% A long-running program: a process owns the port and keeps every output line.
start(Name, Exe, Args, Env) ->
    Self = self(),
    Owner = spawn(fun() ->
                          Port = open_port({spawn_executable, Exe},
                                           [{args, Args}, {env, Env}, exit_status, stderr_to_stdout,
                                            {line, 4096}, hide]),
                          {os_pid, OsPid} = erlang:port_info(Port, os_pid),
                          pidfile("+", OsPid),
                          Self ! {self(), OsPid},
                          loop(Port, OsPid, [], running)
                  end),
    receive {Owner, OsPid} ->
            ets:insert(procs, {get(test), OsPid}),
            #{name => Name, owner => Owner, ospid => OsPid}
    after 5000 -> fail("cannot start ~s", [Name])
    end.

loop(Port, OsPid, Lines, Status) ->
    receive
        {Port, {data, {_, L}}} -> loop(Port, OsPid, [L | Lines], Status);
        {Port, {exit_status, S}} -> pidfile("-", OsPid), loop(Port, OsPid, Lines, {exited, S});
        {get, From} -> From ! {lines, self(), lists:reverse(Lines), Status}, loop(Port, OsPid, Lines, Status)
    end.

lines(#{owner := O}) ->
    O ! {get, self()},
    receive {lines, O, L, S} -> {L, S} after 2000 -> {[], unknown} end.

wait_line(H, Sub, Ms) when Ms =< 0 -> fail("~s printed no line with \"~s\": ~p", [maps:get(name, H), Sub, element(1, lines(H))]);
wait_line(H, Sub, Ms) ->
    {L, _} = lines(H),
    case [X || X <- L, string:find(X, Sub) =/= nomatch] of
        [X | _] -> X;
        [] -> timer:sleep(50), wait_line(H, Sub, Ms - 50)
    end.

wait_exit(H, Ms) when Ms =< 0 -> fail("~s did not exit", [maps:get(name, H)]);
wait_exit(H, Ms) ->
    case lines(H) of
        {_, {exited, S}} -> S;
        _ -> timer:sleep(50), wait_exit(H, Ms - 50)
    end.

kill_os(OsPid) ->
    os:cmd(flat("kill -9 ~b 2>/dev/null", [OsPid])),
    pidfile("-", OsPid).

cleanup(Test) ->
    [kill_os(P) || {_, P} <- ets:lookup(procs, Test)],
    ets:delete(procs, Test).

%% A one-shot command: {ExitStatus, Output}.
cmd(Exe, Args, Env) ->
    H = start(filename:basename(Exe), Exe, Args, Env),
    S = wait_exit(H, 15000),
    {L, _} = lines(H),
    {S, lists:flatten(lists:join("\n", L))}.

otp_epmd_client(Port, Args) -> cmd(os:find_executable("epmd"), ["-port", integer_to_list(Port) | Args], env([])).

free_port() ->
    {ok, S} = gen_tcp:listen(0, [{ip, {127,0,0,1}}, {reuseaddr, false}]),
    {ok, P} = inet:port(S),
    gen_tcp:close(S),
    P.

listening(Port) ->
    case gen_tcp:connect({127,0,0,1}, Port, [], 300) of
        {ok, S} -> gen_tcp:close(S), true;
        _ -> false
    end.

wait_listening(Port) -> wait_until(fun() -> listening(Port) end, 5000, flat("nothing listens on ~b", [Port])).
wait_closed(Port) -> wait_until(fun() -> not listening(Port) end, 5000, flat("~b still listens", [Port])).

wait_until(F, Ms, What) when Ms =< 0 -> case F() of true -> ok; _ -> fail("~ts", [What]) end;
wait_until(F, Ms, What) ->
    case F() of true -> ok; _ -> timer:sleep(50), wait_until(F, Ms - 50, What) end.

cnode_epmd(Port, Extra) ->
    H = start("cnode-epmd", bin("cnode-epmd"), ["-port", integer_to_list(Port), "-address", "127.0.0.1" | Extra],
              env([])),
    wait_listening(Port),
    H.

otp_epmd(Port, Extra) ->
    H = start("epmd", os:find_executable("epmd"), ["-port", integer_to_list(Port), "-address", "127.0.0.1" | Extra],
              env([])),
    wait_listening(Port),
    H.

%% An erl node on EPMD port Port that stays up; -start_epmd false: it must use the epmd under test.
erl_node(Name, Port) ->
    H = start(Name, os:find_executable("erl"),
              ["-noshell", "-name", Name ++ "@127.0.0.1", "-setcookie", ?COOKIE, "-start_epmd", "false",
               "-eval", "io:format(\"up~n\"), receive after infinity -> ok end"],
              env([{"ERL_EPMD_PORT", integer_to_list(Port)}])),
    wait_line(H, "up", 15000),
    H.

%% An erl one-shot on EPMD port Port evaluating Expr and printing its value as "result: ~p".
erl_eval(Name, Port, Expr) ->
    {S, Out} = cmd(os:find_executable("erl"),
                   ["-noshell", "-name", Name ++ "@127.0.0.1", "-setcookie", ?COOKIE, "-start_epmd", "false",
                    "-eval", "io:format(\"result: ~p~n\", [" ++ Expr ++ "]), halt()."],
                   env([{"ERL_EPMD_PORT", integer_to_list(Port)}])),
    check(S =:= 0, "erl ~s exited ~p: ~ts", [Name, S, Out]),
    case string:find(Out, "result: ") of
        nomatch -> fail("erl ~s printed no result: ~ts", [Name, Out]);
        R -> string:trim(string:slice(R, 8))
    end.

%% A raw ALIVE2 registration kept open by the returned socket.
register_raw(Port, Name) ->
    {ok, S} = gen_tcp:connect({127,0,0,1}, Port, [binary, {active, false}, {packet, raw}]),
    N = list_to_binary(Name),
    Body = <<120, 4711:16, 77, 0, 6:16, 5:16, (byte_size(N)):16, N/binary, 0:16>>,
    ok = gen_tcp:send(S, <<(byte_size(Body)):16, Body/binary>>),
    {ok, <<118, 0, _:32>>} = gen_tcp:recv(S, 6, 3000),
    S.

%% ---- tests -------------------------------------------------------------------------------------------

%% Two erl nodes register with cnode-epmd, find each other and connect; OTP's `epmd -names` lists them.
t_erl_pair() ->
    P = free_port(),
    _E = cnode_epmd(P, []),
    _B = erl_node("eb", P),
    check(erl_eval("ea", P, "net_adm:ping('eb@127.0.0.1')") =:= "pong", "ea could not ping eb", []),
    {0, Names} = otp_epmd_client(P, ["-names"]),
    check(string:find(Names, flat("epmd: up and running on port ~b with data:", [P])) =/= nomatch
          andalso string:find(Names, "name eb at port") =/= nomatch, "epmd -names: ~ts", [Names]),
    %% erl's own view through erl_epmd (NAMES) and the distribution (PORT_PLEASE2) agree.
    R = erl_eval("ec", P, "begin {ok, L} = erl_epmd:names(\"127.0.0.1\"), lists:sort([N || {N, _} <- L]) end"),
    check(R =:= "[\"eb\",\"ec\"]", "erl_epmd:names gave ~s", [R]),
    ok.

%% `epmd -kill` answers as against OTP's epmd: refused while a name lives, then Killed; the server exits.
t_kill_like_otp() ->
    P1 = free_port(), E1 = cnode_epmd(P1, []),
    P2 = free_port(), E2 = otp_epmd(P2, []),
    S1 = register_raw(P1, "live"), S2 = register_raw(P2, "live"),
    {St1, Out1} = otp_epmd_client(P1, ["-kill"]),
    {St2, Out2} = otp_epmd_client(P2, ["-kill"]),
    check({St1, Out1} =:= {St2, Out2}, "kill with live names: cnode-epmd ~p ~p, OTP ~p ~p", [St1, Out1, St2, Out2]),
    check(string:find(Out1, "Killing not allowed") =/= nomatch, "unexpected answer ~p", [Out1]),
    check(listening(P1), "cnode-epmd stopped after a refused kill", []),
    gen_tcp:close(S1), gen_tcp:close(S2),
    wait_until(fun() -> string:find(element(2, otp_epmd_client(P1, ["-names"])), "live") =:= nomatch end, 3000,
               "the name stayed after its socket closed"),
    wait_until(fun() -> string:find(element(2, otp_epmd_client(P2, ["-names"])), "live") =:= nomatch end, 3000,
               "OTP kept the name after its socket closed"),
    K1 = otp_epmd_client(P1, ["-kill"]),
    K2 = otp_epmd_client(P2, ["-kill"]),
    check(K1 =:= K2 andalso K1 =:= {0, "Killed"}, "kill with no names: cnode-epmd ~p, OTP ~p", [K1, K2]),
    check(wait_exit(E1, 5000) =:= 0, "cnode-epmd exit status after kill", []),
    check(wait_exit(E2, 5000) =:= 0, "OTP epmd exit status after kill", []),
    wait_closed(P1),
    ok.

%% `epmd -stop` (and its refusal without -relaxed_command_check) as against OTP's epmd.
t_stop_like_otp() ->
    P1 = free_port(), _ = cnode_epmd(P1, ["-relaxed_command_check"]),
    P2 = free_port(), _ = otp_epmd(P2, ["-relaxed_command_check"]),
    S1 = register_raw(P1, "victim"), S2 = register_raw(P2, "victim"),
    A1 = otp_epmd_client(P1, ["-stop", "victim"]),
    A2 = otp_epmd_client(P2, ["-stop", "victim"]),
    check(A1 =:= A2, "stop: cnode-epmd ~p, OTP ~p", [A1, A2]),
    check(gen_tcp:recv(S1, 0, 2000) =:= {error, closed}, "the stopped registration socket stayed open", []),
    gen_tcp:close(S1), gen_tcp:close(S2),
    B1 = otp_epmd_client(P1, ["-stop", "nobody"]),
    B2 = otp_epmd_client(P2, ["-stop", "nobody"]),
    check(B1 =:= B2, "stop unknown: cnode-epmd ~p, OTP ~p", [B1, B2]),
    ok.

%% The C node registers with cnode-epmd, erl finds and pings it; SIGKILL removes its name at once.
t_cnode_found_by_erl() ->
    P = free_port(), _ = cnode_epmd(P, []),
    C = start("cnode", cfg(cnode), ["--name", "cn1@127.0.0.1", "--cookie", ?COOKIE, "--epmd-port",
                                    integer_to_list(P), "--listen", "0"], env([])),
    wait_line(C, " ready", 15000),
    check(erl_eval("ep", P, "net_adm:ping('cn1@127.0.0.1')") =:= "pong", "erl could not ping the C node", []),
    {0, Names} = otp_epmd_client(P, ["-names"]),
    check(string:find(Names, "name cn1 at port") =/= nomatch, "epmd -names: ~ts", [Names]),
    kill_os(maps:get(ospid, C)),
    T0 = erlang:monotonic_time(millisecond),
    wait_until(fun() -> string:find(element(2, otp_epmd_client(P, ["-names"])), "cn1") =:= nomatch end, 2000,
               "cn1 still registered after SIGKILL"),
    io:format("  # name gone ~b ms after SIGKILL~n", [erlang:monotonic_time(millisecond) - T0]),
    ok.

%% Nothing on the port: cnode serves EPMD itself, says so, and erl and `epmd -names` use it.
t_embedded() ->
    P = free_port(),
    C = start("cnode", cfg(cnode), ["--name", "emb@127.0.0.1", "--cookie", ?COOKIE, "--epmd-port",
                                    integer_to_list(P), "--listen", "0"],
              env([{"ERL_EPMD_ADDRESS", "127.0.0.1"}])),
    L = wait_line(C, "started embedded EPMD server on port", 10000),
    check(string:find(L, integer_to_list(P)) =/= nomatch, "wrong port in ~ts", [L]),
    wait_line(C, " ready", 10000),
    {0, Names} = otp_epmd_client(P, ["-names"]),
    check(string:find(Names, "name emb at port") =/= nomatch, "epmd -names: ~ts", [Names]),
    check(erl_eval("ee", P, "net_adm:ping('emb@127.0.0.1')") =:= "pong", "erl could not ping the C node", []),
    os:cmd(flat("kill -TERM ~b", [maps:get(ospid, C)])),
    check(wait_exit(C, 10000) =:= 0, "cnode exit status", []),
    wait_closed(P),
    ok.

%% -daemon detaches (the command returns at once) and serves; ERL_EPMD_PORT picks the port; -kill ends it.
t_daemon_and_env() ->
    P = free_port(),
    {S, _} = cmd(bin("cnode-epmd"), ["-daemon", "-address", "127.0.0.1"], env([{"ERL_EPMD_PORT", integer_to_list(P)}])),
    check(S =:= 0, "cnode-epmd -daemon exited ~p", [S]),
    wait_listening(P),
    %% The daemon's pid, for the pid file (it double-forked): whoever has our exact command line.
    Daemons = daemon_pids(),
    [pidfile("+", list_to_integer(Pid)) || Pid <- Daemons],
    {0, N} = cmd(bin("cnode-epmd"), ["-names"], env([{"ERL_EPMD_PORT", integer_to_list(P)}])),
    check(string:find(N, flat("up and running on port ~b", [P])) =/= nomatch, "cnode-epmd -names: ~ts", [N]),
    K = cmd(bin("cnode-epmd"), ["-port", integer_to_list(P), "-kill"], env([])),
    check(K =:= {0, "Killed"}, "cnode-epmd -kill: ~p", [K]),
    wait_closed(P),
    wait_until(fun() -> [D || D <- Daemons, filelib:is_dir("/proc/" ++ D)] =:= [] end, 3000, "the daemon lives on"),
    [pidfile("-", list_to_integer(Pid)) || Pid <- Daemons],
    ok.

daemon_pids() ->
    Exe = bin("cnode-epmd"),
    [Pid || Pid <- filelib:wildcard("[0-9]*", "/proc"),
            case file:read_file("/proc/" ++ Pid ++ "/cmdline") of
                {ok, B} -> binary:split(B, <<0>>, [global, trim]) =:= [list_to_binary(Exe), <<"-daemon">>, <<"-address">>, <<"127.0.0.1">>];
                _ -> false
            end].
