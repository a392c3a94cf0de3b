%% interop_lib: the harness shared by the interop suites (interop/*.escript). A suite compiles this file at
%% startup into its --tmp directory, adds that to the code path and calls
%%
%%     interop_lib:main(Args, SuiteName, Tests, Opts)
%%
%% Args are the escript's arguments as run.sh passes them (--cnode BIN --repo DIR --build DIR --epmd-port P
%% --free-port P2 --tmp DIR --pidfile F [--fake] [test...]); Tests are {Name, TimeoutSeconds, Fun} or
%% {Name, TimeoutSeconds, Fun, TestOpts} (TestOpts: #{shared_cnode => false} for a test that does not use, or
%% itself restarts, the shared cnode). Each test runs in its own process with its own time limit inside the
%% suite's budget; output is `ok Name` or `FAIL Name: reason` (plus log tails) per test, `  # ...` info lines,
%% and last `SuiteName: N passed, N failed`; the escript halts with 0 only when all passed.
%%
%% Opts (all optional):
%%   node          this node's name (default 't@127.0.0.1'); it is made distributed with the suite's cookie
%%   budget_ms     the whole suite's time budget (default 225000)
%%   shared_cnode  name of the shared cnode ("cnode@127.0.0.1"), started before the tests; main_cnode/0
%%                 returns it (restarting it when a test left it dead); undefined: none
%%   shared_cnode_proc  its process/log name (default "cnode"); shared_cnode_args: extra cnode arguments
%%   fail_logs     process name prefixes whose log tails a failing test shows (default ["cnode"])
%%   done_file     a file name written into --tmp once the suite finished (run.sh checks "done")
%%
%% External processes (cnode, erl, elixir, make) are ports owned by small processes that keep every output
%% line (also written to TMP/<name>.log); each OS pid is recorded in the pid file ("+pid name", "-pid" once
%% it exited) so run.sh can kill leftovers, and everything a test started is killed after it (its scope).
-module(interop_lib).

-export([main/3, main/4]).
%% configuration and output
-export([cfg/1, info/2, step/1, fail/2, flat/2, oneline/1, now_ms/0, random_cookie/0]).
%% external processes
-export([start_ext/4, wait_line/4, wait_exit/2, mark/1, status/1, lines_since/2, tail/2, show_log/4,
         signal/2, signal_pid/2, cleanup_scope/1, own_pid/2, base_env/0, child_pids/1, exe_of/1,
         port_freed/2]).
%% cnode, erl and elixir
-export([cnode_cmd/1, start_cnode/3, start_cnode/4, wait_ready/4, main_cnode/0, main_cnode_if_running/0, shared_cnode/0,
         main_cnode_creation/0, set_main_cnode/2, start_erl/2, start_elixir/3, ctl/3, echo_once/3]).
%% puppets
-export([puppet/1, cmd/2, pmsg/2, ping/1, quiet/2, pmonitor/2, expect_exit/3, expect_down/4]).
%% helpers for tests
-export([flush_all/0, remote_fun/1, remote_fun/2, wait_until/3, first_diff/2, t2b_diff/2, type_of/1]).

-define(TAB, interop).

%% ---------------------------------------------------------------------------------------------------------
%% main

main(Args, SuiteName, Tests) -> main(Args, SuiteName, Tests, #{}).

main(Args, SuiteName, Tests, Opts) ->
    Cfg0 = parse_args(Args, #{fake => false, only => []}),
    T0 = now_ms(),
    io:setopts(standard_io, [{encoding, unicode}]),
    ets:new(?TAB, [named_table, public, set]),
    Cookie = random_cookie(),
    Node = maps:get(node, Opts, 't@127.0.0.1'),
    Cfg = maps:merge(Cfg0, #{cookie => Cookie, t0 => T0, suite => SuiteName, node => Node,
                             shared_cnode => maps:get(shared_cnode, Opts, undefined),
                             shared_cnode_proc => maps:get(shared_cnode_proc, Opts, "cnode"),
                             shared_cnode_args => maps:get(shared_cnode_args, Opts, []),
                             fail_logs => maps:get(fail_logs, Opts, ["cnode"])}),
    persistent_term:put(interop_cfg, Cfg),
    [begin
         io:format("FAIL setup: missing --~ts~n~ts: 0 passed, 1 failed~n", [K, SuiteName]),
         halt(1)
     end || K <- [tmp, pidfile, 'epmd-port', cnode, repo], not maps:is_key(K, Cfg)],
    ok = filelib:ensure_dir(filename:join([cfg(tmp), "home", "x"])),
    setup_logger(Node),
    case net_kernel:start(Node, #{name_domain => longnames}) of
        {ok, _} -> ok;
        Err -> io:format("FAIL setup: cannot start distribution as ~ts: ~p~n~ts: 0 passed, 1 failed~n",
                         [Node, Err, SuiteName]),
               halt(1)
    end,
    erlang:set_cookie(list_to_atom(Cookie)),
    case shared_cnode() of
        undefined -> ok;
        _ -> try main_cnode() of
                 #{} -> ok
             catch
                 exit:{fail, Why} -> info("starting the shared cnode failed: ~ts", [Why])
             end
    end,
    Selected = case maps:get(only, Cfg) of
                   [] -> Tests;
                   Only -> [T || T <- Tests, lists:member(atom_to_list(element(1, T)), Only)]
               end,
    info("~ts: cnode ~ts~ts, cookie ~ts, node ~ts", [SuiteName, maps:get(cnode, Cfg),
                                                     case maps:get(fake, Cfg) of true -> " (FAKE: erl stand-in)"; _ -> "" end,
                                                     Cookie, Node]),
    Budget = maps:get(budget_ms, Opts, 225000),
    Results = [run_test(T, T0 + Budget) || T <- Selected],
    cleanup_scope(suite),
    Passed = length([ok || ok <- Results]),
    Failed = length(Results) - Passed,
    info("~ts took ~.1f s", [SuiteName, (now_ms() - T0) / 1000]),
    io:format("~ts: ~b passed, ~b failed~n", [SuiteName, Passed, Failed]),
    case maps:get(done_file, Opts, undefined) of
        undefined -> ok;
        Done -> file:write_file(filename:join(cfg(tmp), Done), "done\n")
    end,
    halt(case Failed of 0 -> 0; _ -> 1 end).

parse_args([], C) -> C;
parse_args(["--fake" | T], C) -> parse_args(T, C#{fake => true});
parse_args(["--" ++ K, V | T], C) -> parse_args(T, C#{list_to_atom(K) => V});
parse_args([Test | T], C = #{only := O}) -> parse_args(T, C#{only => O ++ [Test]}).

cfg(K) -> maps:get(K, persistent_term:get(interop_cfg)).

setup_logger(Node) ->
    %% OTP's own reports (connection attempts, global warnings) go to a file, not into the test output.
    [Short | _] = string:split(atom_to_list(Node), "@"),
    F = filename:join(cfg(tmp), Short ++ ".log"),
    ok = logger:add_handler(file_h, logger_std_h, #{config => #{file => F}}),
    logger:remove_handler(default).

now_ms() -> erlang:monotonic_time(millisecond).

random_cookie() -> [$A + rand:uniform(26) - 1 || _ <- lists:seq(1, 20)].

info(F, A) -> io:format("  # " ++ F ++ "~n", A).

%% ---------------------------------------------------------------------------------------------------------
%% running tests

run_test({Name, Timeout, Fun}, Deadline) -> run_test({Name, Timeout, Fun, #{}}, Deadline);
run_test({Name, Timeout, Fun, TOpts}, Deadline) ->
    Remaining = Deadline - now_ms(),
    Main = case maps:get(shared_cnode, TOpts, true) of
               false -> undefined;
               _ -> main_cnode_if_running()
           end,
    CnMark = case Main of undefined -> 0; _ -> mark(Main) end,
    Start = now_ms(),
    Result =
        if Remaining < 3000 -> {fail, "suite time budget exhausted"};
           true ->
               Limit = min(Timeout * 1000, Remaining),
               {Pid, MRef} = spawn_monitor(fun() ->
                                                   put(scope, Name),
                                                   step("starting"),
                                                   exit({done, Fun()})
                                           end),
               receive
                   {'DOWN', MRef, _, _, {done, _}} -> ok;
                   {'DOWN', MRef, _, _, {fail, Why}} -> {fail, Why};
                   {'DOWN', MRef, _, _, Crash} -> {fail, flat("crashed while ~ts: ~tW", [get_step(Name), Crash, 30])}
               after Limit ->
                       exit(Pid, kill),
                       receive {'DOWN', MRef, _, _, _} -> ok end,
                       {fail, flat("timeout after ~b s while ~ts", [Limit div 1000, get_step(Name)])}
               end
        end,
    %% A test that made the shared cnode exit fails, whatever it checked.
    Result2 = case {Result, Main} of
                  {ok, undefined} -> ok;
                  {ok, _} ->
                      case status(Main) of
                          running -> ok;
                          {exited, S} -> {fail, flat("cnode exited (status ~p) during the test", [S])}
                      end;
                  {{fail, W}, _} when Main =/= undefined ->
                      case status(Main) of
                          {exited, S} -> {fail, flat("~ts (and cnode exited with status ~p)", [W, S])};
                          _ -> Result
                      end;
                  _ -> Result
              end,
    Secs = (now_ms() - Start) / 1000,
    Out = case Result2 of
              ok -> io:format("ok ~ts~n", [Name]), info("~ts took ~.1f s", [Name, Secs]), ok;
              {fail, Why2} ->
                  io:format("FAIL ~ts: ~ts~n", [Name, oneline(Why2)]),
                  info("~ts took ~.1f s", [Name, Secs]),
                  case Main of
                      undefined -> ok;
                      _ -> show_log("shared cnode log during the test", Main, CnMark, 25)
                  end,
                  Prefixes = cfg(fail_logs),
                  [show_log("log", H, 0, 15) || {{proc, _}, H = #{name := PN}, S} <- ets:tab2list(?TAB),
                                                S =:= Name, lists:any(fun(P) -> lists:prefix(P, PN) end, Prefixes)],
                  failed
          end,
    cleanup_scope(Name),
    Out.

step(S) -> ets:insert(?TAB, {{step, get(scope)}, S}).
get_step(Name) -> case ets:lookup(?TAB, {step, Name}) of [{_, S}] -> S; _ -> "?" end.

fail(F, A) -> exit({fail, flat(F, A)}).

flat(F, A) -> lists:flatten(io_lib:format(F, A)).

oneline(S) ->
    %% ~p breaks long terms over indented lines: a newline and the indentation after it become one space.
    L = unicode:characters_to_list(re:replace(lists:flatten(S), "\n\\s*", " ", [global, unicode])),
    case length(L) > 2000 of true -> lists:sublist(L, 2000) ++ "..."; false -> L end.

show_log(Title, H, Since, N) ->
    Lines = lines_since(H, Since),
    Tail = lists:nthtail(max(0, length(Lines) - N), Lines),
    info("~ts (~ts, ~b lines, last ~b):", [Title, maps:get(name, H), length(Lines), length(Tail)]),
    [io:format("    | ~ts~n", [L]) || L <- Tail],
    ok.

%% ---------------------------------------------------------------------------------------------------------
%% external processes: each is a port owned by a small process that keeps its output lines

%% Starts Exe with Args and Env (a port list: {Var, Value | false}); returns a handle
%% #{name, owner, ospid, log}. The process belongs to the calling test's scope (killed after the test).
start_ext(Name, Exe, Args, Env) ->
    Scope = case get(scope) of undefined -> suite; S -> S end,
    Self = self(),
    LogFile = filename:join(cfg(tmp), Name ++ ".log"),
    Owner = spawn(fun() -> ext_init(Self, Name, Exe, Args, Env, LogFile) end),
    receive
        {Owner, started, OsPid} ->
            H = #{name => Name, owner => Owner, ospid => OsPid, log => LogFile},
            ets:insert(?TAB, {{proc, OsPid}, H, Scope}),
            H;
        {Owner, error, Why} -> fail("cannot start ~ts (~ts): ~p", [Name, Exe, Why])
    after 10000 -> fail("cannot start ~ts (~ts): no answer", [Name, Exe])
    end.

ext_init(Parent, Name, Exe, Args, Env, LogFile) ->
    {ok, Log} = file:open(LogFile, [append]),
    io:format(Log, "=== ~ts ~p~n", [Exe, Args]),
    try open_port({spawn_executable, Exe},
                  [{args, Args}, {env, Env}, exit_status, stderr_to_stdout, {line, 4096}, hide]) of
        Port ->
            {os_pid, OsPid} = erlang:port_info(Port, os_pid),
            pidfile("+", OsPid, Name),
            Parent ! {self(), started, OsPid},
            ext_loop(#{port => Port, log => Log, lines => [], n => 0, partial => [], waiters => [],
                       status => running, ospid => OsPid})
    catch _:Why -> Parent ! {self(), error, Why}
    end.

pidfile(Sign, OsPid, Name) ->
    file:write_file(cfg(pidfile), io_lib:format("~ts~b ~ts~n", [Sign, OsPid, Name]), [append]).

ext_loop(S = #{port := Port, log := Log}) ->
    receive
        {Port, {data, {noeol, L}}} ->
            ext_loop(S#{partial := maps:get(partial, S) ++ L});
        {Port, {data, {eol, L}}} ->
            Line = maps:get(partial, S) ++ L,
            N = maps:get(n, S) + 1,
            io:format(Log, "~ts~n", [Line]),
            Waiters = [W || W = {From, Ref, Match, Since} <- maps:get(waiters, S),
                            not (N > Since andalso matches(Match, Line) andalso reply(From, Ref, {ok, Line}))],
            ext_loop(S#{partial := [], n := N, lines := [Line | maps:get(lines, S)], waiters := Waiters});
        {Port, {exit_status, St}} ->
            io:format(Log, "=== exit status ~p~n", [St]),
            pidfile("-", maps:get(ospid, S), "exited"),
            [reply(From, Ref, {exited, St}) || {From, Ref, _, _} <- maps:get(waiters, S)],
            ext_loop(S#{status := {exited, St}, waiters := []});
        {wait, From, Ref, Match, Since} ->
            Found = [L || {I, L} <- numbered(S), I > Since, matches(Match, L)],
            case {Found, maps:get(status, S)} of
                {[L | _], _} when Match =/= exit -> reply(From, Ref, {ok, L}), ext_loop(S);
                {_, {exited, St}} -> reply(From, Ref, {exited, St}), ext_loop(S);
                _ -> ext_loop(S#{waiters := [{From, Ref, Match, Since} | maps:get(waiters, S)]})
            end;
        {cancel, Ref} ->
            ext_loop(S#{waiters := [W || W = {_, R, _, _} <- maps:get(waiters, S), R =/= Ref]});
        {query, From, Ref, What} ->
            reply(From, Ref, case What of
                                 mark -> maps:get(n, S);
                                 status -> maps:get(status, S);
                                 lines -> numbered(S)
                             end),
            ext_loop(S)
    end.

numbered(#{lines := L, n := N}) -> lists:zip(lists:seq(1, N), lists:reverse(L)).

reply(From, Ref, Msg) -> From ! {Ref, Msg}, true.

matches(exit, _) -> false;
matches(F, L) when is_function(F) -> F(L);
matches([H | _] = Subs, L) when is_list(H) -> lists:all(fun(Sub) -> string:find(L, Sub) =/= nomatch end, Subs);
matches(Sub, L) -> string:find(L, Sub) =/= nomatch.

query(#{owner := O}, What) ->
    Ref = make_ref(),
    O ! {query, self(), Ref, What},
    receive {Ref, R} -> R after 5000 -> error({owner_not_answering, What}) end.

%% The number of lines the process printed so far (for wait_line's Since).
mark(H) -> query(H, mark).
%% running | {exited, Status}
status(H) -> query(H, status).
lines_since(H, Since) -> [L || {I, L} <- query(H, lines), I > Since].

%% Waits for a line matching Match (substring, list of substrings, or fun) after line number Since.
%% Returns {ok, Line} | timeout | {exited, Status}.
wait_line(#{owner := O}, Match, Since, Timeout) ->
    Ref = make_ref(),
    O ! {wait, self(), Ref, Match, Since},
    receive {Ref, R} -> R
    after Timeout ->
            O ! {cancel, Ref},
            receive {Ref, R} -> R after 0 -> timeout end
    end.

%% {ok, ExitStatus} | timeout
wait_exit(H, Timeout) ->
    case wait_line(H, exit, 0, Timeout) of
        {exited, St} -> {ok, St};
        timeout -> timeout
    end.

signal(#{ospid := P}, Sig) -> signal_pid(P, Sig).
signal_pid(P, Sig) -> os:cmd(flat("kill -~ts ~b 2>/dev/null", [Sig, P])).

%% Kills everything the scope started (ports by their OS pid, extra pids as recorded) and waits for exits.
cleanup_scope(Scope) ->
    Procs = [H || {{proc, _}, H, S} <- ets:tab2list(?TAB), S =:= Scope],
    Raw = [{P, N} || {{rawpid, P}, N, S} <- ets:tab2list(?TAB), S =:= Scope],
    [begin signal(H, "KILL"), wait_exit(H, 3000), ets:delete(?TAB, {proc, maps:get(ospid, H)}) end
     || H <- Procs, status(H) =:= running],
    [ets:delete(?TAB, {proc, maps:get(ospid, H)}) || H <- Procs],
    [begin
         case os:cmd(flat("kill -0 ~b 2>/dev/null && echo alive", [P])) of
             "alive" ++ _ -> signal_pid(P, "KILL");
             _ -> ok
         end,
         pidfile("-", P, N),
         ets:delete(?TAB, {rawpid, P})
     end || {P, N} <- Raw],
    ok.

%% An OS pid we did not spawn directly (a grandchild) but must kill.
own_pid(P, Name) ->
    Scope = case get(scope) of undefined -> suite; S -> S end,
    pidfile("+", P, Name),
    ets:insert(?TAB, {{rawpid, P}, Name, Scope}).

base_env() ->
    [{"ERL_EPMD_PORT", cfg('epmd-port')}, {"HOME", filename:join(cfg(tmp), "home")},
     {"ERL_FLAGS", false}, {"ERL_AFLAGS", false}, {"ERL_ZFLAGS", false}, {"ELIXIR_ERL_OPTIONS", false},
     {"CNODE_DRAIN_DELAY", "0"}].  % SIGTERM stops a cnode at once (ops_suite tests the drain)

child_pids(Pid) ->
    F = flat("/proc/~b/task/~b/children", [Pid, Pid]),
    Out = case file:read_file(F) of
              {ok, B} -> B;
              _ -> list_to_binary(os:cmd(flat("ps -o pid= --ppid ~b", [Pid])))  % kernels without .../children
          end,
    [binary_to_integer(X) || X <- string:lexemes(Out, " \n")].

exe_of(Pid) ->
    case file:read_link(flat("/proc/~b/exe", [Pid])) of
        {ok, E} -> E;
        _ -> "?"
    end.

%% true once nothing accepts connections on Port (polled N times).
port_freed(_, 0) -> false;
port_freed(Port, N) ->
    case gen_tcp:connect({127,0,0,1}, Port, [], 500) of
        {ok, S} -> gen_tcp:close(S), timer:sleep(100), port_freed(Port, N - 1);
        _ -> true
    end.

%% ---------------------------------------------------------------------------------------------------------
%% cnode instances

cnode_cmd(Args) ->
    case cfg(fake) of
        true -> {os:find_executable("escript"), [filename:join(cfg(repo), "interop/fake_cnode.escript") | Args]};
        false -> {cfg(cnode), Args}
    end.

%% Starts a cnode (ProcName: its log name; NodeName: "x@127.0.0.1"; Extra: more arguments, e.g.
%% ["--ticktime", "4"]) and waits for its ready line; returns {Handle, Creation}.
start_cnode(ProcName, NodeName, Extra) -> start_cnode(ProcName, NodeName, Extra, #{}).

%% Opts: wrap (a command the program runs under, e.g. ["/usr/sbin/ip", "netns", "exec", "ns1"]).
start_cnode(ProcName, NodeName, Extra, Opts) ->
    step("starting " ++ ProcName),
    {Exe0, Args0} = cnode_cmd(["--name", NodeName, "--cookie", cfg(cookie), "--epmd-port", cfg('epmd-port'),
                               "--listen", "0" | Extra]),
    {Exe, Args} = wrapped(Opts, Exe0, Args0),
    H = start_ext(ProcName, Exe, Args, base_env()),
    {H, wait_ready(H, NodeName, 0, 15000)}.

%% Waits for `cnode: node NAME ready: port P, creation C` after line Since; returns the creation.
wait_ready(H, NodeName, Since, Timeout) ->
    case wait_line(H, ["cnode: node " ++ NodeName ++ " ready"], Since, Timeout) of
        {ok, Line} ->
            case re:run(Line, "ready: port (\\d+), creation (\\d+)", [{capture, all_but_first, list}]) of
                {match, [_Port, Cr]} -> list_to_integer(Cr);
                nomatch -> fail("ready line without port/creation: ~ts", [Line])
            end;
        timeout -> fail("~ts printed no ready line within ~b s; log: ~ts", [maps:get(name, H), Timeout div 1000, tail(H, 5)]);
        {exited, St} -> fail("~ts exited with status ~p before ready; log: ~ts", [maps:get(name, H), St, tail(H, 5)])
    end.

tail(H, N) ->
    L = lines_since(H, 0),
    lists:join(" | ", lists:nthtail(max(0, length(L) - N), L)).

%% The shared cnode's node name (a string), or undefined.
shared_cnode() -> cfg(shared_cnode).

main_cnode_if_running() ->
    case ets:lookup(?TAB, main_cnode) of
        [{_, H, _}] -> case status(H) of running -> H; _ -> undefined end;
        [] -> undefined
    end.

%% The shared cnode (suite scope); started again when a previous test left it dead.
main_cnode() ->
    case main_cnode_if_running() of
        undefined ->
            NodeName = case shared_cnode() of
                           undefined -> fail("this suite has no shared cnode", []);
                           NN -> NN
                       end,
            Scope = get(scope),
            put(scope, suite),
            case ets:lookup(?TAB, main_cnode) of
                [{_, Old, _}] -> info("shared cnode had exited (~p); starting it again", [status(Old)]);
                [] -> ok
            end,
            try start_cnode(cfg(shared_cnode_proc), NodeName, cfg(shared_cnode_args)) of
                {H, Cr} -> ets:insert(?TAB, {main_cnode, H, Cr}), put(scope, Scope), H
            catch exit:{fail, Why} -> put(scope, Scope), fail("shared cnode: ~ts", [Why])
            end;
        H -> H
    end.

%% The creation the shared cnode announced in its ready line (undefined: not known).
main_cnode_creation() ->
    case ets:lookup(?TAB, main_cnode) of
        [{_, _, Cr}] -> Cr;
        [] -> undefined
    end.

%% Makes H (a cnode started in suite scope, e.g. by a test that restarts the shared cnode) the shared cnode;
%% Creation: its creation, or undefined before its ready line.
set_main_cnode(H, Creation) -> ets:insert(?TAB, {main_cnode, H, Creation}), ok.

%% ---------------------------------------------------------------------------------------------------------
%% erl / elixir peers

%% Starts `erl -name Short@127.0.0.1`; every peer registers interop_sink, which forwards what it receives to
%% the pid set by {'$interop_target', Pid} (and prints it). Opts: cookie, args (extra erl flags), eval (code
%% run before the ready marker), host (the name's host part, e.g. "::1"), env (variables replacing
%% base_env()'s), wrap (as start_cnode/4's). Returns {Handle, NodeAtom}.
start_erl(Short, Opts) ->
    step("starting erl " ++ Short),
    Node = Short ++ "@" ++ maps:get(host, Opts, "127.0.0.1"),
    Env = maps:get(env, Opts, []),
    Cookie = maps:get(cookie, Opts, cfg(cookie)),
    Sink = "register(interop_sink, spawn(fun() -> (fun L(T) -> receive "
           "{'$interop_target', P} -> L(P); "
           "M -> io:format(\"SINK ~p~n\", [M]), is_pid(T) andalso (T ! {interop_sink, node(), M}), L(T) "
           "end end)(none) end)), ",
    Eval = Sink ++ maps:get(eval, Opts, "") ++ " io:format(\"PEER_READY~n\").",
    Args = ["-noinput", "-name", Node, "-setcookie", Cookie | maps:get(args, Opts, [])] ++ ["-eval", Eval],
    {Exe, Args1} = wrapped(Opts, os:find_executable("erl"), Args),
    H = start_ext("erl_" ++ Short, Exe, Args1,
                  Env ++ [KV || KV = {K, _} <- base_env(), not lists:keymember(K, 1, Env)]),
    case wait_line(H, "PEER_READY", 0, 20000) of
        {ok, _} -> ok;
        R -> fail("erl ~ts did not start (~p): ~ts", [Node, R, tail(H, 5)])
    end,
    {H, list_to_atom(Node)}.

wrapped(#{wrap := [W | WArgs]}, Exe, Args) -> {W, WArgs ++ [Exe | Args]};
wrapped(_, Exe, Args) -> {Exe, Args}.

%% Starts `elixir --name Short@127.0.0.1 --cookie C Args...` (Args: e.g. [ScriptFile | ScriptArgs] or
%% ["-e", Code]); returns the handle (wait_exit / wait_line on it).
start_elixir(Short, Args, Env) ->
    step("starting elixir " ++ Short),
    start_ext("elixir_" ++ Short, os:find_executable("elixir"),
              ["--name", Short ++ "@127.0.0.1", "--cookie", cfg(cookie) | Args], base_env() ++ Env).

%% ---------------------------------------------------------------------------------------------------------
%% helpers talking to the C node

%% {cnode_ctl, Node} ! {self(), Ref, Req}; {ok, Answer} | timeout.
ctl(Node, Req, Timeout) ->
    Ref = make_ref(),
    {cnode_ctl, Node} ! {self(), Ref, Req},
    receive {Ref, R} -> {ok, R} after Timeout -> timeout end.

echo_once(Node, T, Timeout) ->
    {echo, Node} ! {self(), T},
    receive R -> R after Timeout -> fail("no echo reply from ~ts within ~b ms", [Node, Timeout]) end.

%% ---------------------------------------------------------------------------------------------------------
%% puppets (proc_suite, signals_suite): C processes spawned with spawn(CNode, cnode_demo, puppet, [Owner]) that
%% run {'$puppet', Cmd} and forward every other message to Owner as {puppet, P, Msg}. ?T: how long these wait
%% for an expected message.

-define(T, 5000).

puppet(Node) ->
    P = spawn(Node, cnode_demo, puppet, [self()]),
    node(P) =:= Node orelse fail("spawn(~ts, cnode_demo, puppet, _) gave ~p", [Node, P]),
    P.

cmd(P, Cmd) -> P ! {'$puppet', Cmd}, ok.

%% The next message puppet P sends its owner (this process).
pmsg(P, What) ->
    receive {puppet, P, M} -> M
    after ?T -> fail("puppet ~p: no message within ~b ms while waiting for ~ts", [P, ?T, What])
    end.

%% Pings P and returns what P forwarded before the pong (in order: anything P got before the ping).
ping(P) -> ping(P, []).
ping(P, Acc) ->
    cmd(P, ping),
    ping_wait(P, Acc).
ping_wait(P, Acc) ->
    receive
        {puppet, P, pong} -> lists:reverse(Acc);
        {puppet, P, M} -> ping_wait(P, [M | Acc])
    after ?T -> fail("puppet ~p did not answer ping within ~b ms (forwarded before: ~p)", [P, ?T, lists:reverse(Acc)])
    end.

%% Pings P and fails when it forwarded anything meanwhile.
quiet(P, Context) ->
    case ping(P) of
        [] -> ok;
        Stray -> fail("~ts: puppet forwarded unexpected ~p", [Context, Stray])
    end.

%% A puppet's monitor of Target: returns the ref.
pmonitor(P, Target) ->
    cmd(P, {monitor, Target}),
    case pmsg(P, "{monitor, Ref}") of
        {monitor, Ref} when is_reference(Ref) -> Ref;
        Other -> fail("puppet {monitor, ~p} answered ~p", [Target, Other])
    end.

expect_exit(P, Want, What) ->
    receive
        {'EXIT', P, Want} -> ok;
        {'EXIT', P, Other} -> fail("~ts: got {'EXIT', ~p, ~p}, want reason ~p", [What, P, Other, Want])
    after ?T -> fail("~ts: no {'EXIT', ~p, ~p} within ~b ms", [What, P, Want, ?T])
    end.

expect_down(Ref, Obj, Want, What) ->
    receive
        {'DOWN', Ref, process, O, R} when O =:= Obj, R =:= Want -> ok;
        {'DOWN', Ref, process, O, R} -> fail("~ts: got {'DOWN', _, process, ~p, ~p}, want object ~p reason ~p",
                                             [What, O, R, Obj, Want])
    after ?T -> fail("~ts: no DOWN (~p, ~p) within ~b ms", [What, Obj, Want, ?T])
    end.

%% ---------------------------------------------------------------------------------------------------------
%% helpers for tests

flush_all() -> receive _ -> flush_all() after 0 -> ok end.

%% A fun made by erl_eval from source text: unlike a fun of a suite's own (escript or this) module, it can
%% run on any node of the same OTP, e.g. erpc:call(Peer, F, Timeout) or spawn(Peer, F).
%% remote_fun("fun(X) -> X * 2 end"); remote_fun(Text, #{'Var' => Value}) binds free variables.
remote_fun(Text) -> remote_fun(Text, #{}).
remote_fun(Text, Bindings) ->
    {ok, Toks, _} = erl_scan:string(Text ++ "."),
    {ok, [Expr]} = erl_parse:parse_exprs(Toks),
    B = maps:fold(fun(K, V, Acc) -> erl_eval:add_binding(K, V, Acc) end, erl_eval:new_bindings(), Bindings),
    {value, F, _} = erl_eval:expr(Expr, B),
    F.

%% Polls Fun() every 10 ms until it returns true; false after TimeoutMs. What: for the caller's messages.
wait_until(Fun, TimeoutMs, What) -> wait_until_(Fun, now_ms() + TimeoutMs, What).
wait_until_(Fun, Deadline, What) ->
    case Fun() of
        true -> true;
        _ -> case now_ms() > Deadline of
                 true -> false;
                 false -> timer:sleep(10), wait_until_(Fun, Deadline, What)
             end
    end.

t2b_diff(A, B) ->
    BA = term_to_binary(A), BB = term_to_binary(B),
    P = binary:longest_common_prefix([BA, BB]),
    flat("external format differs at byte ~b of ~b", [P, byte_size(BA)]).

%% Points at the first difference, for failure messages.
first_diff(A, B) when is_tuple(A), is_tuple(B), tuple_size(A) =:= tuple_size(B) ->
    first_diff(tuple_to_list(A), tuple_to_list(B));
first_diff([A | As], [B | Bs]) when A =:= B -> first_diff(As, Bs);
first_diff([A | _], [B | _]) -> first_diff(A, B);
first_diff(A, B) when is_map(A), is_map(B), map_size(A) =:= map_size(B) ->
    first_diff(lists:sort(maps:to_list(A)), lists:sort(maps:to_list(B)));
first_diff(A, B) when is_bitstring(A), is_bitstring(B) ->
    PadA = (8 - bit_size(A) rem 8) rem 8,
    PadB = (8 - bit_size(B) rem 8) rem 8,
    BA = <<A/bitstring, 0:PadA>>,
    BB = <<B/bitstring, 0:PadB>>,
    flat("bitstrings of ~b and ~b bits, ~b leading bytes equal",
         [bit_size(A), bit_size(B), binary:longest_common_prefix([BA, BB])]);
first_diff(A, B) ->
    flat("first difference: ~tW (~ts) vs ~tW (~ts)", [A, 6, type_of(A), B, 6, type_of(B)]).

type_of(X) when is_integer(X) -> "integer";
type_of(X) when is_float(X) -> "float";
type_of(X) when is_atom(X) -> "atom";
type_of(X) when is_binary(X) -> "binary";
type_of(X) when is_bitstring(X) -> "bitstring";
type_of(X) when is_list(X) -> "list";
type_of(X) when is_tuple(X) -> "tuple";
type_of(X) when is_map(X) -> "map";
type_of(X) when is_pid(X) -> "pid";
type_of(X) when is_reference(X) -> "ref";
type_of(X) when is_port(X) -> "port";
type_of(X) when is_function(X) -> "fun";
type_of(_) -> "other".
