#!/usr/bin/env escript
%%! -connect_all false
%% Ring agreement (issue 12): the C node's placement of Horde.DynamicSupervisor children (`cnode term choose`)
%% must equal the Elixir strategy users configure, CNode.Horde.Distribution (elixir/cnode_horde.ex), computed
%% on this BEAM. CI has no Horde, so Horde.UniformDistribution is the test-only re-implementation in
%% interop/fake_horde_distribution.ex (horde-wire.md §5.2, checked against real Horde 0.10 placements:
%% interop/horde_placements.eterm). Both .ex files are compiled with elixirc into --tmp and loaded here; no
%% cnode node is started, only the binary's `term choose` subcommand. Args as interop/run.sh passes them
%% (--cnode BIN --repo DIR --tmp DIR --pidfile F ...); the seed is printed and RING_SUITE_SEED=N repeats a
%% run. Ends with `ring_suite: N passed, N failed`.
-mode(compile).

-define(BUDGET_MS, 55000).
%% RING_SUITE_CASES=N changes the number of random cases per test (default 1,000).
-define(N_CASES, case os:getenv("RING_SUITE_CASES") of false -> 1000; NC -> list_to_integer(NC) end).
-define(MEMBER, 'Elixir.Horde.DynamicSupervisor.Member').
-define(STRATEGY, 'Elixir.CNode.Horde.Distribution').
-define(UNIFORM, 'Elixir.Horde.UniformDistribution').
-define(HELPERS, 'Elixir.CNode.Horde').
-define(RANGE, 4294967295).

main(Args) ->
    Cfg = parse_args(Args, #{}),
    T0 = erlang:monotonic_time(millisecond),
    io:setopts(standard_io, [{encoding, unicode}]),
    Seed = case os:getenv("RING_SUITE_SEED") of
               false -> erlang:unique_integer([positive]) bxor erlang:system_time(microsecond) band 16#FFFFFFFF;
               S -> list_to_integer(S)
           end,
    [begin
         io:format("FAIL setup: missing --~ts~nring_suite: 0 passed, 1 failed~n", [K]),
         halt(1)
     end || K <- [tmp, pidfile, cnode, repo], not maps:is_key(K, Cfg)],
    persistent_term:put(rs_cfg, Cfg#{seed => Seed, t0 => T0}),
    info("seed ~b (RING_SUITE_SEED=~b repeats this run)", [Seed, Seed]),
    rand:seed(exsss, Seed),
    Dir = filename:join(cfg(tmp), "ring_suite"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    persistent_term:put(rs_dir, Dir),
    Tests = [{elixir_compile, fun t_compile/0},
             {helpers, fun t_helpers/0},
             {real_placements, fun t_real/0},
             {ring_random, fun t_random/0},
             {ring_uniform, fun t_uniform/0},
             {ring_collision, fun t_collision/0}],
    Only = case os:getenv("RING_SUITE_ONLY") of
               false -> [N || {N, _} <- Tests];
               O -> [elixir_compile | [list_to_atom(X) || X <- string:lexemes(O, ",")]]
           end,
    Results = [run(N, F) || {N, F} <- Tests, lists:member(N, Only)],
    Passed = length([ok || ok <- Results]),
    Failed = length(Results) - Passed,
    info("ring_suite took ~.1f s", [(erlang:monotonic_time(millisecond) - T0) / 1000]),
    io:format("ring_suite: ~b passed, ~b failed~n", [Passed, Failed]),
    halt(case Failed of 0 -> 0; _ -> 1 end).

parse_args([], C) -> C;
parse_args(["--" ++ K, V | T], C) when K =/= "fake" -> parse_args(T, C#{list_to_atom(K) => V});
parse_args([_ | T], C) -> parse_args(T, C).

cfg(K) -> maps:get(K, persistent_term:get(rs_cfg)).
info(F, A) -> io:format("  # " ++ F ++ "~n", A).

run(Name, F) ->
    T = erlang:monotonic_time(millisecond),
    Left = cfg(t0) + ?BUDGET_MS - T,
    Res = case {Left =< 0, Name =/= elixir_compile andalso persistent_term:get(rs_loaded, false) =:= false} of
              {true, _} -> {fail, "suite time budget used up"};
              {_, true} -> {fail, "the Elixir modules did not compile (see elixir_compile)"};
              _ -> try F() catch
                       throw:{fail, Why} -> {fail, Why};
                       C:E:St -> {fail, io_lib:format("~p:~p ~p", [C, E, St])}
                   end
          end,
    info("~ts: ~.1f s", [Name, (erlang:monotonic_time(millisecond) - T) / 1000]),
    case Res of
        ok -> io:format("ok ~ts~n", [Name]), ok;
        {fail, W} -> io:format("FAIL ~ts: ~ts (seed ~b)~n", [Name, W, cfg(seed)]), fail
    end.

fail(F, A) -> throw({fail, lists:flatten(io_lib:format(F, A))}).

pidfile(Sign, P, Name) ->
    file:write_file(cfg(pidfile), io_lib:format("~ts~b ~ts~n", [Sign, P, Name]), [append]).

%% ---------------------------------------------------------------------------------------------------------
%% external programs: run as ports, OS pid in the pid file, killed on timeout

%% {ExitStatus | timeout, Output} of Exe Args (stdout and stderr together).
run_prog(Exe, Args, Name, TimeoutMs) ->
    Env = [{"ERL_FLAGS", false}, {"ERL_AFLAGS", false}, {"ERL_ZFLAGS", false}, {"ELIXIR_ERL_OPTIONS", false}],
    Port = open_port({spawn_executable, Exe}, [{args, Args}, {env, Env}, exit_status, stderr_to_stdout, binary,
                                               hide]),
    {os_pid, P} = erlang:port_info(Port, os_pid),
    pidfile("+", P, Name),
    Deadline = erlang:monotonic_time(millisecond) + TimeoutMs,
    R = collect(Port, Deadline, []),
    case R of
        {timeout, _} -> os:cmd("kill -9 " ++ integer_to_list(P));
        _ -> ok
    end,
    pidfile("-", P, "exited"),
    R.

collect(Port, Deadline, Acc) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive
        {Port, {data, D}} -> collect(Port, Deadline, [D | Acc]);
        {Port, {exit_status, S}} -> {S, iolist_to_binary(lists:reverse(Acc))}
    after Left -> {timeout, iolist_to_binary(lists:reverse(Acc))}
    end.

%% `cnode term choose [Opts]` over input lines, through files (as interop/term_suite.escript runs the tool).
tool(Sub, Lines, Name) ->
    Dir = persistent_term:get(rs_dir),
    In = filename:join(Dir, Name ++ ".in"), Out = filename:join(Dir, Name ++ ".out"),
    Err = filename:join(Dir, Name ++ ".err"),
    ok = file:write_file(In, [[L, $\n] || L <- Lines]),
    Sh = "exec \"$0\" term " ++ string:join(Sub, " ") ++ " < \"$1\" > \"$2\" 2> \"$3\"",
    {St, _} = run_prog("/bin/sh", ["-c", Sh, cfg(cnode), In, Out, Err], "cnode_term", 30000),
    {ok, OutB} = file:read_file(Out),
    {ok, ErrB} = file:read_file(Err),
    St =:= 0 orelse fail("cnode term ~ts exited with ~p: ~ts", [string:join(Sub, " "), St, oneline(ErrB)]),
    [L || L <- binary:split(OutB, <<"\n">>, [global]), L =/= <<>>].

oneline(B) -> string:trim(binary:replace(iolist_to_binary(B), <<"\n">>, <<" | ">>, [global])).

%% The C choice for each {Spec, Members} case: the printed {Name, Node} or {error, Reason}, read back as a term.
c_choose(Opts, Cases, Name) ->
    Lines = [binary:encode_hex(term_to_binary({Spec, Members})) || {Spec, Members} <- Cases],
    Got = tool(["choose" | Opts], Lines, Name),
    length(Got) =:= length(Cases) orelse
        fail("cnode term choose ~ts printed ~b lines for ~b cases", [string:join(Opts, " "), length(Got), length(Cases)]),
    [parse_line(L) || L <- Got].

parse_line(Line) ->
    try
        {ok, Toks, _} = erl_scan:string(unicode:characters_to_list(<<Line/binary, ".">>)),
        {ok, T} = erl_parse:parse_term(Toks),
        T
    catch _:_ -> {unreadable, Line}
    end.

%% The BEAM choice: the chosen member's name, or the error.
beam_choose(Mod, Spec, Members) ->
    case Mod:choose_node(Spec, Members) of
        {ok, #{name := N}} -> N;
        {error, _} = E -> E;
        Other -> {unexpected, Other}
    end.

%% Compares the BEAM's and the C tool's choices; shows the first few differences and writes all of them (as
%% hex input lines for `cnode term choose`, with both answers) to TMP/ring_suite/mismatch_<n>.txt.
check(What, Cases, Exp, Got) ->
    Bad = [{C, E, G} || {C, E, G} <- lists:zip3(Cases, Exp, Got), E =/= G],
    case Bad of
        [] -> ok;
        _ ->
            F = filename:join(persistent_term:get(rs_dir), "mismatch_" ++ integer_to_list(erlang:unique_integer([positive])) ++ ".txt"),
            file:write_file(F, [io_lib:format("~ts beam=~0tp c=~0tp~n", [binary:encode_hex(term_to_binary(C)), E, G]) || {C, E, G} <- Bad]),
            [info("~ts mismatch: BEAM ~0tp, C ~0tp for ~ts", [What, E, G, show(C)]) || {C, E, G} <- lists:sublist(Bad, 4)],
            fail("~ts: ~b of ~b choices differ (all in ~ts)", [What, length(Bad), length(Cases), F])
    end.

show({Spec, Members}) ->
    io_lib:format("spec ~0tP, members [~ts]",
                  [Spec, 20, lists:join(", ", [io_lib:format("~0tp ~0tp", [N, S]) || #{name := N, status := S} <- Members])]).

%% ---------------------------------------------------------------------------------------------------------
%% tests

%% elixir/cnode_horde.ex compiles without Horde and without a single warning; then the fake Horde modules, and
%% the strategy against them (so the behaviour is declared and checked), loaded into this VM.
t_compile() ->
    Dir = persistent_term:get(rs_dir),
    Elixirc = case os:find_executable("elixirc") of
                  false -> fail("elixirc not found (apt-get install elixir)", []);
                  E -> E
              end,
    {0, LibB} = run_prog(os:find_executable("elixir"), ["-e", "IO.write(:code.lib_dir(:elixir))"], "elixir", 30000),
    ElixirEbin = filename:join(string:trim(binary_to_list(LibB)), "ebin"),
    Src = filename:join([cfg(repo), "elixir", "cnode_horde.ex"]),
    Fake = filename:join([cfg(repo), "interop", "fake_horde_distribution.ex"]),
    [Alone, FakeDir, Ebin] = [filename:join(Dir, D) || D <- ["alone", "fake", "ebin"]],
    [begin _ = file:del_dir_r(D), ok = filelib:ensure_dir(filename:join(D, "x")) end || D <- [Alone, FakeDir, Ebin]],
    Compile = fun(Name, Args) ->
                      case run_prog(Elixirc, Args, "elixirc", 60000) of
                          {0, Out} -> Out;
                          {St, Out} -> fail("elixirc ~ts: status ~p: ~ts", [Name, St, oneline(Out)])
                      end
              end,
    Out1 = Compile("cnode_horde.ex (no Horde)", ["-o", Alone, Src]),
    binary:match(Out1, <<"warning">>) =:= nomatch orelse
        fail("cnode_horde.ex compiles with warnings where Horde is absent: ~ts", [oneline(Out1)]),
    Out2 = Compile("fake_horde_distribution.ex", ["-o", FakeDir, Fake]),
    Out3 = Compile("cnode_horde.ex (fake Horde)", ["-pa", FakeDir, "-o", Ebin, Src]),
    binary:match(<<Out2/binary, Out3/binary>>, <<"warning">>) =:= nomatch orelse
        fail("warnings with the fake Horde: ~ts", [oneline(<<Out2/binary, Out3/binary>>)]),
    true = code:add_patha(ElixirEbin),
    true = code:add_patha(FakeDir),
    true = code:add_patha(Ebin),
    [{module, M} = code:ensure_loaded(M) || M <- [?HELPERS, ?STRATEGY, ?UNIFORM, ?MEMBER]],
    %% the strategy declares the behaviour when Horde (here: the fake) is there at compile time
    Behaviours = proplists:get_value(behaviour, ?STRATEGY:module_info(attributes), []),
    lists:member('Elixir.Horde.DistributionStrategy', Behaviours) orelse
        fail("CNode.Horde.Distribution does not declare @behaviour Horde.DistributionStrategy", []),
    persistent_term:put(rs_loaded, true),
    ok.

%% The helpers and the strategy on their own (no C tool).
t_helpers() ->
    Eq = fun(What, Exp, Got) -> Exp =:= Got orelse fail("~ts: want ~tp, got ~tp", [What, Exp, Got]) end,
    Eq("c_child_spec/2", #{id => c_counter, start => {c_counter, start_link, [42]}, cnode => true},
       ?HELPERS:c_child_spec(c_counter, [42])),
    Eq("c_child_spec/3", #{id => x, start => {c_counter, start_link, [42]}, cnode => true, restart => transient,
                           shutdown => 500, type => worker, modules => [c_counter]},
       ?HELPERS:c_child_spec(c_counter, [42], [{id, x}, {restart, transient}, {shutdown, 500}, {type, worker},
                                               {modules, [c_counter]}])),
    Eq("demo counter spec", {'Elixir.CNode.Demo.Counter', start_link, [42]},
       maps:get(start, ?HELPERS:c_child_spec('Elixir.CNode.Demo.Counter', [42]))),
    Eq("keyword args", {w, start_link, [[{interval, 500}]]}, maps:get(start, ?HELPERS:c_child_spec(w, [[{interval, 500}]]))),
    Eq("unknown option", raised, try ?HELPERS:c_child_spec(c_counter, [], [{restrat, temporary}]) catch error:_ -> raised end),
    [Eq(io_lib:format("c_child? ~tp", [S]), W, ?HELPERS:'c_child?'(S))
     || {S, W} <- [{#{cnode => true}, true}, {#{cnode => false}, false}, {#{cnode => <<"true">>}, false},
                   {#{cnode => 1}, false}, {#{}, false}, {{id, {m, f, []}, permanent, 5000, worker, [m]}, false},
                   {?HELPERS:c_child_spec(m, []), true}]],
    M = fun(Node) -> member(Node, alive) end,
    [Eq(io_lib:format("c_member? ~tp", [X]), W, ?HELPERS:'c_member?'(X))
     || {X, W} <- [{M('cnode1@127.0.0.1'), true}, {M('cnode@h'), true}, {M(cnode), true}, {M('cnodex@h'), true},
                   {M('e1@127.0.0.1'), false}, {M('xcnode1@h'), false}, {M('CNODE1@h'), false}, {M('cnod@h'), false},
                   {#{name => {s, "cnode1@h"}}, false}, {#{name => 'cnode1@h'}, false}, {#{}, false}, {nil, false}]],
    Eq("has_quorum?", true, ?STRATEGY:'has_quorum?'([M('cnode1@h')])),
    %% the prefix is configurable, and a bad one is refused
    application:set_env(cnode_horde, c_node_prefix, <<"worker">>),
    Eq("prefix worker: worker1", true, ?HELPERS:'c_member?'(M('worker1@h'))),
    Eq("prefix worker: cnode1", false, ?HELPERS:'c_member?'(M('cnode1@h'))),
    application:set_env(cnode_horde, c_node_prefix, <<>>),
    Eq("empty prefix", raised, try ?HELPERS:'c_member?'(M('cnode1@h')) catch error:_ -> raised end),
    application:unset_env(cnode_horde, c_node_prefix),
    Eq("default prefix", <<"cnode">>, ?HELPERS:c_node_prefix()),
    %% without C members the strategy places ordinary children exactly as UniformDistribution does
    Plain = [{S, [Mb || Mb = #{name := {_, N}} <- Ms, not lists:prefix("cnode", atom_to_list(N))]}
             || {S0, Ms} <- gen_cases(300), S <- [maps:remove(cnode, S0)]],
    [Eq("no C members", beam_choose(?UNIFORM, S, Ms), beam_choose(?STRATEGY, S, Ms)) || {S, Ms} <- Plain],
    [Eq("C child, no C members", {error, no_alive_nodes}, beam_choose(?STRATEGY, S#{cnode => true}, Ms))
     || {S, Ms} <- Plain],
    %% only members of the child's kind are chosen, and only alive ones
    [begin
         Got = beam_choose(?STRATEGY, S, Ms),
         Eligible = [N || #{name := N = {_, Nd}, status := alive} <- Ms,
                          lists:prefix("cnode", atom_to_list(Nd)) =:= (maps:get(cnode, S, false) =:= true)],
         case Got of
             {error, no_alive_nodes} -> Eq("nothing eligible", [], Eligible);
             _ -> lists:member(Got, Eligible) orelse fail("chose ~tp, not among ~tp", [Got, Eligible])
         end
     end || {S, Ms} <- gen_cases(500)],
    ok.

%% Placements real Horde 0.10 made (interop/horde_placements.eterm): the fake UniformDistribution, the
%% strategy (these are BEAM nodes' children) and the C tool (plain and --uniform) all name the same owner.
t_real() ->
    File = filename:join([cfg(repo), "interop", "horde_placements.eterm"]),
    {ok, Terms} = case file:consult(File) of
                      {ok, _} = R -> R;
                      Err -> fail("cannot read ~ts: ~p", [File, Err])
                  end,
    Cases = [{Spec, Members} || {_, _, _, Spec, Members, _} <- Terms],
    Owners = [Owner || {_, _, _, _, _, Owner} <- Terms],
    Decisions = length([d || {decision, _, _, _, _, _} <- Terms]),
    info("~b placements (~b start_child/handoff decisions, ~b other nodes' views), ~b distinct specs",
         [length(Terms), Decisions, length(Terms) - Decisions, length(lists:usort([maps:remove(id, S) || {S, _} <- Cases]))]),
    check("fake UniformDistribution vs real Horde", Cases, Owners, [beam_choose(?UNIFORM, S, M) || {S, M} <- Cases]),
    check("CNode.Horde.Distribution vs real Horde", Cases, Owners, [beam_choose(?STRATEGY, S, M) || {S, M} <- Cases]),
    check("C choose --uniform vs real Horde", Cases, Owners, c_choose(["--uniform"], Cases, "real_uniform")),
    check("C choose vs real Horde", Cases, Owners, c_choose([], Cases, "real")),
    ok.

%% 1,000 random child specs and member sets: CNode.Horde.Distribution (on this BEAM) vs `cnode term choose`.
t_random() ->
    Cases = gen_cases(?N_CASES),
    Exp = [beam_choose(?STRATEGY, S, M) || {S, M} <- Cases],
    summary(Cases, Exp),
    check("ring_random", Cases, Exp, c_choose([], Cases, "random")).

%% The same without the capability filter: the fake UniformDistribution vs `cnode term choose --uniform`.
t_uniform() ->
    Cases = gen_cases(?N_CASES),
    Exp = [beam_choose(?UNIFORM, S, M) || {S, M} <- Cases],
    summary(Cases, Exp),
    check("ring_uniform", Cases, Exp, c_choose(["--uniform"], Cases, "uniform")).

summary(Cases, Exp) ->
    C = length([x || {#{cnode := true}, _} <- Cases]),
    E = length([x || {error, _} <- Exp]),
    Sizes = lists:usort([length(M) || {_, M} <- Cases]),
    info("~b cases: ~b C children, ~b with nothing eligible, member counts ~w", [length(Cases), C, E, Sizes]).

%% Two member names whose ring points collide (found by search, per prefix), and specs whose key hash falls
%% just before the shared point: libring keeps the point for the name inserted first, the smaller in term
%% order, whatever order the members come in.
t_collision() ->
    Found = [{Prefix, find_collision(Prefix)} || Prefix <- ["cnode", "e"]],
    Cases = lists:append(
              [begin
                   info("~ts: ~tp and ~tp share the ring point ~b", [P, element(2, A), element(2, B), Pt]),
                   Specs = specs_before(Pt, [A, B], P =:= "cnode", 4),
                   [{S, Ms} || S <- Specs,
                               Ms <- [[member(A, alive), member(B, alive)], [member(B, alive), member(A, alive)],
                                      [member(B, alive), member(A, alive), member(A, dead)]]]
               end || {P, {Pt, A, B}} <- Found]),
    Winner = fun({_, Ms}) -> lists:min([N || #{name := N} <- Ms]) end,
    Exp = [Winner(C) || C <- Cases],
    check("fake UniformDistribution at a collision", Cases, Exp, [beam_choose(?UNIFORM, S, M) || {S, M} <- Cases]),
    check("CNode.Horde.Distribution at a collision", Cases, Exp, [beam_choose(?STRATEGY, S, M) || {S, M} <- Cases]),
    check("C choose at a collision", Cases, Exp, c_choose([], Cases, "collision")),
    check("C choose --uniform at a collision", Cases, Exp, c_choose(["--uniform"], Cases, "collision_uniform")),
    ok.

find_collision(Prefix) ->
    find_collision(Prefix, 1, #{}).
find_collision(Prefix, K, Seen) when K < 20000 ->
    Name = {'Elixir.MyApp.Sup', list_to_atom(Prefix ++ integer_to_list(K) ++ "@127.0.0.1")},
    Pts = [erlang:phash2({Name, I}, ?RANGE) || I <- lists:seq(1, 128)],
    case [P || P <- Pts, maps:is_key(P, Seen)] of
        [P | _] -> {P, maps:get(P, Seen), Name};
        [] -> find_collision(Prefix, K + 1, lists:foldl(fun(P, S) -> maps:put(P, Name, S) end, Seen, Pts))
    end.

%% N specs whose key hash lies in (previous point, Pt] of the ring of Names.
specs_before(Pt, Names, C, N) ->
    Pts = lists:usort([erlang:phash2({Nm, I}, ?RANGE) || Nm <- Names, I <- lists:seq(1, 128)]),
    Prev = lists:max([-1 | [P || P <- Pts, P < Pt]]),
    specs_before(Prev, Pt, C, N, 1, []).
specs_before(_, _, _, 0, _, Acc) -> lists:reverse(Acc);
specs_before(Prev, Pt, C, N, K, Acc) ->
    S0 = #{id => K, start => {'Elixir.CNode.Demo.Counter', start_link, [[K]]}},
    S = case C of true -> S0#{cnode => true}; false -> S0 end,
    H = erlang:phash2(erlang:phash2(maps:remove(id, S)), ?RANGE),
    case H > Prev andalso H =< Pt of
        true -> specs_before(Prev, Pt, C, N - 1, K + 1, [S | Acc]);
        false -> specs_before(Prev, Pt, C, N, K + 1, Acc)
    end.

%% ---------------------------------------------------------------------------------------------------------
%% random cases

member(Node, Status) when is_atom(Node) -> member({'Elixir.MyApp.Sup', Node}, Status);
member(Name, Status) -> #{'__struct__' => ?MEMBER, name => Name, status => Status}.

gen_cases(N) -> [{gen_spec(), gen_members()} || _ <- lists:seq(1, N)].

pick(L) -> lists:nth(rand:uniform(length(L)), L).

gen_spec() ->
    Id = case rand:uniform(4) of
             1 -> rand:uniform(1 bsl 128);
             2 -> pick(['Elixir.CNode.Demo.Counter', c_counter, worker]);
             3 -> {worker, rand:uniform(100)};
             4 -> <<"id", (integer_to_binary(rand:uniform(1000)))/binary>>
         end,
    Mod = pick(['Elixir.CNode.Demo.Counter', c_counter, 'Elixir.MyApp.CCounter', 'Elixir.MyApp.Worker', c_sensor]),
    Args = [gen_arg(0) || _ <- lists:seq(1, rand:uniform(4) - 1)],
    S0 = #{id => Id, start => {Mod, start_link, Args}},
    Opts = [{restart, [permanent, transient, temporary]}, {shutdown, [5000, brutal_kill, infinity, rand:uniform(10000)]},
            {type, [worker, supervisor]}, {modules, [[Mod], dynamic, [Mod, other]]}],
    S1 = lists:foldl(fun({K, Vs}, S) -> case rand:uniform(3) of 1 -> S#{K => pick(Vs)}; _ -> S end end, S0, Opts),
    case rand:uniform(100) of
        N when N =< 50 -> S1#{cnode => true};
        N when N =< 54 -> S1#{cnode => pick([false, <<"true">>, 1, 'True', nil, [true]])};
        _ -> S1
    end.

gen_arg(D) ->
    case rand:uniform(16) of
        1 -> rand:uniform(256) - 1;
        2 -> rand:uniform(1 bsl 40) - (1 bsl 39);
        3 -> rand:uniform(1 bsl 100) * pick([1, -1]);
        4 -> float(rand:uniform(1000)) / 8;
        5 -> rand:normal() * 1.0e6;
        6 -> pick([a, ok, nil, true, 'Elixir.MyApp', 'über', '日本', '']);
        7 -> rand:bytes(rand:uniform(20) - 1);
        8 -> <<"name", (integer_to_binary(rand:uniform(99)))/binary>>;
        9 -> [rand:uniform(26) + 96 || _ <- lists:seq(1, rand:uniform(8))];
        10 when D < 3 -> [gen_arg(D + 1) || _ <- lists:seq(1, rand:uniform(4) - 1)];
        11 when D < 3 -> list_to_tuple([gen_arg(D + 1) || _ <- lists:seq(1, rand:uniform(4) - 1)]);
        12 when D < 3 -> maps:from_list([{pick([k, v, 1, <<"key">>, {a, 1}]), gen_arg(D + 1)} || _ <- lists:seq(1, rand:uniform(4) - 1)]);
        13 when D < 3 -> [{pick([name, count, interval]), gen_arg(D + 1)} || _ <- lists:seq(1, rand:uniform(3))];
        14 -> -rand:uniform(1 bsl 27);
        _ -> rand:uniform(100000)
    end.

gen_members() ->
    N = case rand:uniform(10) of 1 -> 0; _ -> rand:uniform(8) end,
    Ms = [member(gen_name(), pick([alive, alive, alive, alive, alive, alive, dead, shutting_down, uninitialized]))
          || _ <- lists:seq(1, N)],
    %% now and then a name given twice (Horde's member list never does that, but the strategy must not care)
    case {Ms, rand:uniform(20)} of
        {[#{name := Nm} | _], 1} -> Ms ++ [member(Nm, pick([alive, dead]))];
        _ -> Ms
    end.

gen_name() ->
    Node = case rand:uniform(10) of
               N when N =< 5 -> list_to_atom("cnode" ++ integer_to_list(rand:uniform(12)) ++ "@127.0.0.1");
               N when N =< 8 -> list_to_atom("e" ++ integer_to_list(rand:uniform(12)) ++ "@127.0.0.1");
               _ -> pick(['cnode@127.0.0.1', 'cnodex@host', 'cnode', 'xcnode1@127.0.0.1', 'CNODE1@127.0.0.1',
                          'cnod@127.0.0.1', 'app@127.0.0.1', 'nonode@nohost', 'cnöde@h', 'cnode_ü@h'])
           end,
    Sup = case rand:uniform(10) of 1 -> 'Elixir.Other.Sup'; _ -> 'Elixir.MyApp.Sup' end,
    {Sup, Node}.
