#!/usr/bin/env escript
%%! -connect_all false
%% Property tests of `cnode term hash|compare|sort|decode` against this BEAM: random terms of every type
%% (deep nesting, maps up to 100 keys, bignums, negative numbers, UTF-8 atoms, bitstrings, funs, local pids,
%% refs and ports, remote ones from a second erl node and handcrafted ones naming other nodes) are written
%% as hex term_to_binary lines, the C tool answers, and every answer must equal erlang:phash2/1,2 and the
%% BEAM's term order. Args as interop/run.sh passes them (--cnode BIN --tmp DIR --pidfile F ...); the seed is
%% printed and TERM_SUITE_SEED=N repeats a run. Ends with `term_suite: N passed, N failed`.
-mode(compile).

%% The budget stops a hang, not a slow machine: hash_random alone took 78 s of 100 under a load of 7 on 2 vCPUs
%% (make test's other lane and other work), so 200 s; run.sh's 300 s timeout stays the backstop.
-define(BUDGET_MS, 200000).
%% TERM_SUITE_SCALE (a divisor, default 1) shrinks the counts, for the run against a sanitizer build.
-define(SCALE, case os:getenv("TERM_SUITE_SCALE") of false -> 1; S -> max(1, list_to_integer(S)) end).
-define(N_HASH, (100000 div ?SCALE)).
-define(N_PAIRS, (60000 div ?SCALE)).
-define(N_SORT, (20000 div ?SCALE)).

main(Args) ->
    Cfg = parse_args(Args, #{}),
    T0 = erlang:monotonic_time(millisecond),
    io:setopts(standard_io, [{encoding, unicode}]),
    Seed = case os:getenv("TERM_SUITE_SEED") of
               false -> erlang:unique_integer([positive]) bxor erlang:system_time(microsecond) band 16#FFFFFFFF;
               S -> list_to_integer(S)
           end,
    persistent_term:put(ts_cfg, Cfg#{seed => Seed, t0 => T0}),
    info("seed ~b (TERM_SUITE_SEED=~b repeats this run); OTP ~s, passed to the tool as --otp-release",
         [Seed, Seed, erlang:system_info(otp_release)]),
    rand:seed(exsss, Seed),
    Dir = filename:join(cfg(tmp), "term_suite"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    persistent_term:put(ts_dir, Dir),
    {PeerRes, Peer} = start_peer(),
    persistent_term:put(ts_ids, identifiers(Peer)),
    persistent_term:put(ts_peer, Peer),
    Tests = [{remote_peer, fun() -> PeerRes end},
             {vectors, fun t_vectors/0},
             {hash_random, fun t_hash/0},
             {hash_ranges, fun t_hash_ranges/0},
             {compare_pairs, fun t_compare/0},
             {sort_stable, fun t_sort/0},
             {decode_roundtrip, fun t_decode/0},
             {bad_input, fun t_bad_input/0}],
    Only = case os:getenv("TERM_SUITE_ONLY") of false -> [N || {N, _} <- Tests]; O -> [list_to_atom(X) || X <- string:lexemes(O, ",")] end,
    Results = [run(N, F) || {N, F} <- Tests, lists:member(N, Only)],
    stop_peer(Peer),
    Passed = length([ok || ok <- Results]),
    Failed = length(Results) - Passed,
    info("term_suite took ~.1f s", [(erlang:monotonic_time(millisecond) - T0) / 1000]),
    io:format("term_suite: ~b passed, ~b failed~n", [Passed, Failed]),
    halt(case Failed of 0 -> 0; _ -> 1 end).

parse_args([], C) -> C;
parse_args(["--" ++ K, V | T], C) -> parse_args(T, C#{list_to_atom(K) => V});
parse_args([_ | T], C) -> parse_args(T, C).

cfg(K) -> maps:get(K, persistent_term:get(ts_cfg)).
info(F, A) -> io:format("  # " ++ F ++ "~n", A).

run(Name, F) ->
    Left = cfg(t0) + ?BUDGET_MS - erlang:monotonic_time(millisecond),
    Res = case Left =< 0 of
              true -> {fail, "suite time budget used up"};
              false -> try F() catch
                           throw:{fail, Why} -> {fail, Why};
                           C:E:St -> {fail, io_lib:format("~p:~p ~p", [C, E, St])}
                       end
          end,
    info("~ts: ~.1f s", [Name, (erlang:monotonic_time(millisecond) - cfg(t0) - ?BUDGET_MS + Left) / 1000]),
    case Res of
        ok -> io:format("ok ~ts~n", [Name]), ok;
        {fail, W} -> io:format("FAIL ~ts: ~ts (seed ~b)~n", [Name, W, cfg(seed)]), fail
    end.

fail(F, A) -> throw({fail, lists:flatten(io_lib:format(F, A))}).

pidfile(Sign, P, Name) ->
    file:write_file(cfg(pidfile), io_lib:format("~ts~b ~ts~n", [Sign, P, Name]), [append]).

%% ---------------------------------------------------------------------------------------------------------
%% the C tool: input and output through files, the process run as a port (killed by OS pid on timeout)

tool(Sub, Lines, Name) ->
    Dir = persistent_term:get(ts_dir),
    In = filename:join(Dir, Name ++ ".in"), Out = filename:join(Dir, Name ++ ".out"),
    Err = filename:join(Dir, Name ++ ".err"),
    ok = file:write_file(In, [[L, $\n] || L <- Lines]),
    {St, OutB, ErrB} = tool_file(Sub, In, Out, Err),
    St =:= 0 orelse fail("cnode term ~ts exited with ~p: ~ts", [string:join(Sub, " "), St, ErrB]),
    [L || L <- binary:split(OutB, <<"\n">>, [global]), L =/= <<>>].

tool_file(Sub, In, Out, Err) ->
    %% compare, sort and hash answer as this BEAM's release does (0.0 and -0.0 are two map keys from OTP 27 on)
    Rel = case lists:member(hd(Sub), ["compare", "sort", "hash"]) of
              true -> ["--otp-release", erlang:system_info(otp_release)];
              false -> []
          end,
    Sh = "exec \"$0\" term " ++ string:join(Sub ++ Rel, " ") ++ " < \"$1\" > \"$2\" 2> \"$3\"",
    Port = open_port({spawn_executable, "/bin/sh"}, [{args, ["-c", Sh, cfg(cnode), In, Out, Err]}, exit_status]),
    {os_pid, P} = erlang:port_info(Port, os_pid),
    pidfile("+", P, "cnode_term"),
    St = receive {Port, {exit_status, S}} -> S
         after 60000 -> os:cmd("kill -9 " ++ integer_to_list(P)), timeout
         end,
    pidfile("-", P, "exited"),
    {ok, O} = file:read_file(Out),
    {ok, E} = file:read_file(Err),
    {St, O, E}.

hex(T) -> binary:encode_hex(term_to_binary(T)).

show(T) -> io_lib:format("~P (hex ~ts)", [T, 30, hex(T)]).

%% Compares expected and actual line lists; reports the first few mismatches with their terms.
check(What, Terms, Expected, Got) ->
    length(Expected) =:= length(Got) orelse
        fail("~ts: ~b answers for ~b inputs", [What, length(Got), length(Expected)]),
    Bad = [{T, E, G} || {T, E, G} <- lists:zip3(Terms, Expected, Got), E =/= G],
    case Bad of
        [] -> ok;
        _ ->
            [info("~ts mismatch: BEAM ~ts, C ~ts for ~ts", [What, E, G, show(T)]) || {T, E, G} <- lists:sublist(Bad, 5)],
            fail("~ts: ~b of ~b differ", [What, length(Bad), length(Terms)])
    end.

%% ---------------------------------------------------------------------------------------------------------
%% tests

t_vectors() ->
    File = filename:join([cfg(repo), "..", "shared", "vectors", "phash2_vectors.txt"]),
    File2 = case filelib:is_file(File) of true -> File; false -> "/work/shared/vectors/phash2_vectors.txt" end,
    case file:read_file(File2) of
        {ok, B} ->
            Lines = [L || L <- binary:split(B, <<"\n">>, [global]), L =/= <<>>],
            Got = tool(["hash"], Lines, "vectors"),
            Exp = [begin [_, A, C | _] = binary:split(L, <<" ">>, [global]), <<A/binary, " ", C/binary>> end || L <- Lines],
            check("vector", Lines, Exp, Got),
            %% and the BEAM agrees with the file
            [begin [H, A, C | _] = binary:split(L, <<" ">>, [global]), T = binary_to_term(binary:decode_hex(H)),
                   {A, C} =:= {integer_to_binary(erlang:phash2(T, 1 bsl 32)), integer_to_binary(erlang:phash2(T))}
                       orelse fail("the BEAM disagrees with the vector file on ~ts", [show(T)]) end
             || L <- lists:sublist(Lines, 200)],
            ok;
        _ -> info("no vector file at ~ts; skipped", [File2]), ok
    end.

t_hash() ->
    Terms = [gen_top() || _ <- lists:seq(1, ?N_HASH)],
    info("hash_random: ~b terms, ~b bytes of external format", [length(Terms), lists:sum([byte_size(term_to_binary(T)) || T <- Terms])]),
    Got = tool(["hash"], [hex(T) || T <- Terms], "hash"),
    Exp = [iolist_to_binary(io_lib:format("~b ~b", [erlang:phash2(T, 1 bsl 32), erlang:phash2(T)])) || T <- Terms],
    check("phash2", Terms, Exp, Got).

t_hash_ranges() ->
    Terms = [gen_top() || _ <- lists:seq(1, 5000)],
    Lines = [hex(T) || T <- Terms],
    Ranges = [1, 2, 3, 1000, 65536, (1 bsl 27) + 1, (1 bsl 32) - 1, (1 bsl 31) + 11, rand:uniform(1 bsl 32)],
    lists:foreach(
      fun(R) ->
              Got = tool(["hash", "--range", integer_to_list(R)], Lines, "range"),
              Exp = [iolist_to_binary(io_lib:format("~b ~b", [erlang:phash2(T, R), erlang:phash2(T)])) || T <- Terms],
              check(io_lib:format("phash2/2 range ~b", [R]), Terms, Exp, Got)
      end, Ranges).

beam_cmp(A, B) -> if A < B -> -1; A == B -> 0; true -> 1 end.

t_compare() ->
    %% -0.0 and 0.0 where OTP 27 changed them: alone, in tuples, as map keys and values (both keys in one map).
    %% -0.0 is made at run time: OTP 25's compiler keeps one of the literals 0.0 and -0.0 (they are =:= there).
    N = binary_to_term(<<131, 70, 16#80, 0:56>>),
    Z = [{0.0, N}, {{0.0}, {N}}, {#{0.0 => a}, #{N => a}}, {#{a => 0.0}, #{a => N}},
         {#{0.0 => x}, #{N => y}}, {#{N => 1}, #{0 => 1}}, {#{N => 1}, #{1.0 => 1}},
         {maps:from_list([{N, a}, {0.0, b}]), maps:from_list([{N, b}, {0.0, a}])},
         {maps:from_list([{N, a}, {0.0, b}]), #{0.0 => a}}, {[#{N => 1}], [#{0.0 => 1}]}],
    Pairs = Z ++ [{B, A} || {A, B} <- Z] ++ [gen_pair() || _ <- lists:seq(1, ?N_PAIRS)],
    Got = tool(["compare"], [[hex(A), " ", hex(B)] || {A, B} <- Pairs], "compare"),
    Exp = [integer_to_binary(beam_cmp(A, B)) || {A, B} <- Pairs],
    Eq = length([x || <<"0">> <- Exp]),
    info("compare_pairs: ~b pairs, ~b of them ==", [length(Pairs), Eq]),
    %% A pair this VM and the second erl node order differently is no test of the C node (see unstable/3).
    Unstable = unstable([P || {P, E, G} <- lists:zip3(Pairs, Exp, Got), E =/= G],
                        fun({A, B}) -> beam_cmp(A, B) end,
                        fun(Nd, {A, B}) -> % B travels first: its new atoms get the lower indexes there
                                case {erpc:call(Nd, erlang, '>', [B, A]), erpc:call(Nd, erlang, '==', [B, A])} of
                                    {true, _} -> -1;
                                    {_, true} -> 0;
                                    _ -> 1
                                end
                        end),
    Keep = [not lists:member(P, Unstable) || P <- Pairs],
    Pick = fun(L) -> [X || {X, true} <- lists:zip(L, Keep)] end,
    check("compare", Pick(Pairs), Pick(Exp), Pick(Got)).

%% erlang/otp#6874 and #11568: from OTP 26 on, small maps keep atom keys in the order of the atoms' internal
%% index, and comparing maps whose keys are maps has depended on that index (exact order of nested atom keys), so
%% two VM instances of one release can order the same pair differently: seen on OTP 27.3.4.1 and 29.1.2 (seed
%% 56983456: maps keyed by maps with atom keys 'λ' and 'a🙂b'; a fresh VM orders them by which atom it made first;
%% OTP 25 and the C node by the atoms' text). For the inputs where the C node disagrees with this VM, the second
%% erl node (another instance of the same release) is asked too, with the pair sent in the other order so that
%% the atoms new to it are made the other way round; where the two BEAMs disagree, the BEAM is no oracle for that
%% input: it is reported and left out. More than a handful of such inputs fails the test (it would be something
%% else).
unstable([], _, _) -> [];
unstable(Bad, Here, There) ->
    #{node := N} = persistent_term:get(ts_peer), % (with no second node, remote_peer has failed already)
    Split = [X || X <- Bad, There(N, X) =/= Here(X)],
    [info("the BEAM contradicts itself: this VM says ~p, the second erl node (same release) the opposite, for ~ts",
          [Here(X), show(X)]) || X <- Split],
    length(Split) =< 3 orelse fail("~b inputs ordered differently by two VMs of one release", [length(Split)]),
    Split.

t_sort() ->
    %% Many terms that are == but not =:= (1, 1.0, {1}, {1.0}...) make stability visible.
    Pool = [gen_top() || _ <- lists:seq(1, 300)],
    Terms = [case rand:uniform(4) of
                 1 -> lists:nth(rand:uniform(300), Pool);
                 2 -> floatify(lists:nth(rand:uniform(300), Pool));
                 _ -> gen_top()
             end || _ <- lists:seq(1, ?N_SORT)],
    Lines = [<<(hex(T))/binary, " #", (integer_to_binary(I))/binary>> || {I, T} <- lists:enumerate(Terms)],
    Got = tool(["sort"], Lines, "sort"),
    Sorted = lists:sort(fun({_, A}, {_, B}) -> A =< B end, lists:zip(Lines, Terms)), % stable
    Exp = [L || {L, _} <- Sorted],
    %% The second erl node's stable sort (a tuple {T, I} sorts by T, then, among == terms, by position I).
    Other = fun() -> #{node := N} = persistent_term:get(ts_peer), LT = list_to_tuple(Lines),
                     [element(I, LT) || {_, I} <- erpc:call(N, lists, sort, [lists:reverse(lists:zip(Terms, lists:seq(1, length(Terms))))])]
            end,
    case Got =:= Exp orelse Got =:= Other() of
        true when Got =/= Exp -> info("sort_stable: this VM and the second erl node (same release) sort differently "
                                      "(see unstable/3); C sorts as the second node does", []);
        true -> ok;
        false ->
            length(Got) =:= length(Exp) orelse fail("sort printed ~b lines for ~b", [length(Got), length(Exp)]),
            {I, E, G} = hd([X || {_, E1, G1} = X <- lists:zip3(lists:seq(1, length(Exp)), Exp, Got), E1 =/= G1]),
            TE = binary_to_term(binary:decode_hex(hd(binary:split(E, <<" ">>)))),
            TG = binary_to_term(binary:decode_hex(hd(binary:split(G, <<" ">>)))),
            fail("sorted output differs first at position ~b: BEAM ~ts, C ~ts", [I, show(TE), show(TG)])
    end,
    %% the clarification's example, stable
    Small = [1, 1, 1.0, 0],
    SL = [hex(T) || T <- Small],
    [<<"836100">>, <<"836101">>, <<"836101">>, F] = tool(["sort"], SL, "sort_small"),
    F =:= hex(1.0) orelse fail("sort of [1, 1, 1.0, 0] is not stable", []),
    ok.

%% Terms without identifiers or funs print in a syntax that reads back: the printed text must parse to the
%% same term (=:=).
t_decode() ->
    Terms = [T || T <- [gen_top() || _ <- lists:seq(1, 3000)], printable(T)],
    Got = tool(["decode"], [hex(T) || T <- Terms], "decode"),
    length(Got) =:= length(Terms) orelse fail("decode printed ~b lines for ~b terms", [length(Got), length(Terms)]),
    Bad = [{T, L} || {T, L} <- lists:zip(Terms, Got), not reads_back(L, T)],
    case Bad of
        [] -> ok;
        [{T, L} | _] -> fail("~b of ~b printed terms do not read back, e.g. ~ts printed as ~ts",
                             [length(Bad), length(Terms), show(T), L])
    end.

reads_back(Line, T) ->
    try
        {ok, Toks, _} = erl_scan:string(unicode:characters_to_list(<<Line/binary, ".">>)),
        {ok, [Expr]} = erl_parse:parse_exprs(Toks),
        {value, V, _} = erl_eval:expr(Expr, []),
        V =:= T
    catch _:_ -> false
    end.

printable(T) when is_pid(T); is_port(T); is_reference(T); is_function(T) -> false;
printable(T) when is_list(T) -> printable_list(T);
printable(T) when is_tuple(T) -> lists:all(fun printable/1, tuple_to_list(T));
printable(T) when is_map(T) -> lists:all(fun printable/1, maps:keys(T) ++ maps:values(T));
printable(_) -> true.
printable_list([H | T]) -> printable(H) andalso printable_list(T);
printable_list([]) -> true;
printable_list(T) -> printable(T).

t_bad_input() ->
    Dir = persistent_term:get(ts_dir),
    In = filename:join(Dir, "bad.in"),
    ok = file:write_file(In, [hex(a), "\n", "83zz\n"]),
    {St, _, Err} = tool_file(["hash"], In, filename:join(Dir, "bad.out"), filename:join(Dir, "bad.err")),
    St =:= 2 orelse fail("bad hex: exit status ~p, want 2", [St]),
    binary:match(Err, <<"line 2">>) =/= nomatch orelse fail("the error does not name line 2: ~ts", [Err]),
    ok = file:write_file(In, ["8368\n"]),
    {St2, _, Err2} = tool_file(["decode"], In, filename:join(Dir, "bad.out"), filename:join(Dir, "bad.err")),
    St2 =:= 2 orelse fail("truncated term: exit status ~p, want 2 (~ts)", [St2, Err2]),
    ok.

%% ---------------------------------------------------------------------------------------------------------
%% the second node: real remote pids, references and ports

start_peer() ->
    Name = "term_suite_" ++ integer_to_list(erlang:unique_integer([positive])),
    case net_kernel:start(list_to_atom(Name ++ "@127.0.0.1"), #{name_domain => longnames}) of
        {ok, _} -> start_peer2();
        Err -> {{fail, io_lib:format("cannot start distribution (~p); only handcrafted remote identifiers", [Err])}, none}
    end.

start_peer2() ->
    Cookie = [$A + rand:uniform(26) - 1 || _ <- lists:seq(1, 20)],
    erlang:set_cookie(list_to_atom(Cookie)),
    PeerName = "term_peer_" ++ integer_to_list(erlang:unique_integer([positive])),
    Node = list_to_atom(PeerName ++ "@127.0.0.1"),
    Env = [{"ERL_FLAGS", false}, {"ERL_AFLAGS", false}, {"ERL_ZFLAGS", false}],
    Port = open_port({spawn_executable, os:find_executable("erl")},
                     [{args, ["-noshell", "-noinput", "-name", atom_to_list(Node), "-setcookie", Cookie,
                              "-connect_all", "false"]}, {env, Env}, exit_status, hide]),
    {os_pid, P} = erlang:port_info(Port, os_pid),
    pidfile("+", P, "term_peer"),
    Peer = #{port => Port, ospid => P, node => Node},
    case wait_ping(Node, 100) of
        pong ->
            BeamPid = list_to_integer(erpc:call(Node, os, getpid, [])),
            BeamPid =/= P andalso pidfile("+", BeamPid, "term_peer_beam"),
            {ok, Peer#{beam => BeamPid}};
        pang -> {{fail, "the second erl node did not come up; only handcrafted remote identifiers"}, Peer}
    end.

wait_ping(_, 0) -> pang;
wait_ping(Node, N) ->
    case net_adm:ping(Node) of
        pong -> pong;
        pang -> timer:sleep(150), wait_ping(Node, N - 1)
    end.

stop_peer(none) -> ok;
stop_peer(#{ospid := P} = Peer) ->
    Pids = [P | [B || #{beam := B} <- [Peer], B =/= P]],
    [os:cmd("kill -9 " ++ integer_to_list(X) ++ " 2>/dev/null") || X <- Pids],
    Port = maps:get(port, Peer),
    receive {Port, {exit_status, _}} -> ok after 3000 -> ok end,
    [pidfile("-", X, "stopped") || X <- Pids],
    ok.

identifiers(Peer) ->
    Local = #{pids => [self() | lists:sublist(processes(), 40)], ports => erlang:ports(),
              refs => [make_ref() || _ <- lists:seq(1, 20)] ++ [erlang:alias() || _ <- lists:seq(1, 3)]},
    Remote = case Peer of
                 #{node := N, beam := _} ->
                     #{pids => lists:sublist(erpc:call(N, erlang, processes, []), 40),
                       ports => erpc:call(N, erlang, ports, []),
                       refs => [erpc:call(N, erlang, make_ref, []) || _ <- lists:seq(1, 20)]};
                 _ -> #{pids => [], ports => [], refs => []}
             end,
    #{local => Local, remote => Remote}.

%% ---------------------------------------------------------------------------------------------------------
%% random terms

gen_top() ->
    case rand:uniform(100) of
        N when N =< 2 -> deep(rand:uniform(400) + 20, gen(3));
        N when N =< 4 -> big_map(rand:uniform(68) + 32);
        _ -> gen(0)
    end.

%% Nesting far beyond the usual: lists, tuples and maps wrapped hundreds of levels deep.
deep(0, T) -> T;
deep(N, T) ->
    W = case rand:uniform(4) of
            1 -> [T];
            2 -> {T};
            3 -> #{k => T};
            4 -> [1, T | 2]
        end,
    deep(N - 1, W).

big_map(N) -> maps:from_list([{gen_key(), case rand:uniform(4) of 1 -> gen(4); _ -> leaf() end} || _ <- lists:seq(1, N)]).

gen_key() ->
    Old = put(in_key, true),
    K = gen_key1(),
    put(in_key, Old),
    K.

gen_key1() ->
    case rand:uniform(6) of
        1 -> rand:uniform(1000);
        2 -> float(rand:uniform(1000));
        3 -> atom();
        4 -> {rand:uniform(50), atom()};
        5 -> bin();
        6 -> gen(4)
    end.

gen(D) when D >= 5 -> leaf();
gen(D) ->
    case rand:uniform(100) + 8 * D of
        N when N =< 55 -> leaf();
        N when N > 100 -> leaf();
        N when N =< 65 -> list_to_tuple([gen(D + 1) || _ <- lists:seq(1, rand:uniform(7) - 1)]);
        N when N =< 73 -> [gen(D + 1) || _ <- lists:seq(1, rand:uniform(6) - 1)];
        N when N =< 78 -> string();
        N when N =< 82 -> mixed_list(D);
        N when N =< 85 -> improper(D);
        N when N =< 93 -> maps:from_list([{gen_key_small(D), gen(D + 1)} || _ <- lists:seq(1, rand:uniform(7) - 1)]);
        N when N =< 95, D =< 1 -> big_map(rand:uniform(36));
        N when N =< 95 -> string();
        _ -> local_fun(D)
    end.

gen_key_small(D) ->
    case rand:uniform(3) of
        1 -> Old = put(in_key, true), K = gen(D + 2), put(in_key, Old), K;
        _ -> gen_key()
    end.

string() -> [rand:uniform(256) - 1 || _ <- lists:seq(1, rand:uniform(30) - 1)].

mixed_list(D) ->
    lists:append([case rand:uniform(3) of
                      1 -> string();
                      2 -> [gen(D + 1)];
                      3 -> [rand:uniform(300) - 1, -rand:uniform(3)]
                  end || _ <- lists:seq(1, rand:uniform(5))]).

improper(D) ->
    Tail = case rand:uniform(4) of 1 -> bin(); 2 -> atom(); 3 -> rand:uniform(300) - 1; 4 -> {gen(D + 1)} end,
    lists:foldl(fun(X, Acc) -> [X | Acc] end, Tail, [gen(D + 1) || _ <- lists:seq(1, rand:uniform(4))]).

local_fun(D) ->
    X = gen(D + 2),
    case rand:uniform(3) of
        1 -> fun() -> X end;
        2 -> fun(A) -> {A, X} end;
        3 -> Y = leaf(), fun(A, B) -> [A, B, X, Y] end
    end.

leaf() ->
    case rand:uniform(19) of
        1 -> rand:uniform(256) - 1;
        2 -> int_edge();
        3 -> rand:uniform(1 bsl 40) - (1 bsl 39);
        4 -> bignum();
        5 -> float_val();
        6 -> float_val();
        7 -> atom();
        8 -> atom();
        9 -> bin();
        10 -> bitstr();
        11 -> [];
        12 -> ident(pids);
        13 -> ident(refs);
        14 -> ident(ports);
        15 -> export_fun();
        16 -> -rand:uniform(1 bsl 28);
        17 -> {};
        18 -> <<>>;
        19 -> rand:uniform(1 bsl 64) * (1 - 2 * (rand:uniform(2) - 1))
    end.

int_edge() ->
    B = lists:nth(rand:uniform(9), [27, 28, 31, 32, 59, 60, 63, 64, 128]),
    (1 bsl B) * (1 - 2 * (rand:uniform(2) - 1)) + rand:uniform(5) - 3.

bignum() ->
    Bits = rand:uniform(2000) + 64,
    M = rand:uniform(1 bsl Bits),
    case rand:uniform(2) of 1 -> M; 2 -> -M end.

float_val() ->
    case rand:uniform(10) of
        1 -> 0.0;
        2 -> binary_to_term(<<131, 70, 16#80, 0:56>>); % -0.0, made at run time (see t_compare)
        3 -> float(rand:uniform(2000) - 1000);
        4 -> (rand:uniform() - 0.5) * math:pow(10, rand:uniform(600) - 300);
        5 -> float(1 bsl (rand:uniform(70) + 20));
        6 -> float(rand:uniform(1 bsl 53));
        7 -> 5.0e-324;
        8 -> 1.7976931348623157e308 * (1 - 2 * (rand:uniform(2) - 1));
        _ -> rand:normal() * 1000
    end.

atom() ->
    Pool = ['', a, b, ok, error, true, false, nil, undefined, 'hello world', 'Elixir.MapSet', 'reg.Crdt',
            'é', 'àbc', 'ÿÿ', 'Ä', 'λ', 'αβγ', 'über', '日本', '🙂', 'a🙂b', 'zz', 'Z', '\x{100}', 'ǿ',
            list_to_atom(lists:duplicate(255, $x)), list_to_atom(lists:duplicate(255, 16#e9)),
            list_to_atom(lists:duplicate(255, 16#1F600))],
    case rand:uniform(4) of
        1 -> list_to_atom([rand:uniform(16#2FF) || _ <- lists:seq(1, rand:uniform(6))]);
        _ -> lists:nth(rand:uniform(length(Pool)), Pool)
    end.

bin() ->
    N = case rand:uniform(10) of 1 -> rand:uniform(300); _ -> rand:uniform(25) - 1 end,
    rand:bytes(N).

bitstr() ->
    B = bin(),
    K = rand:uniform(7),
    <<B/binary, (rand:uniform(1 bsl K) - 1):K>>.

export_fun() ->
    case rand:uniform(3) of
        1 -> fun lists:map/2;
        2 -> fun erlang:phash2/1;
        3 -> erlang:make_fun(atom(), atom(), rand:uniform(256) - 1)
    end.

ident(Kind) ->
    #{local := L, remote := R} = persistent_term:get(ts_ids),
    Pick = fun(Xs) -> lists:nth(rand:uniform(length(Xs)), Xs) end,
    case {rand:uniform(3), maps:get(Kind, R)} of
        {1, _} -> Pick(maps:get(Kind, L));
        {2, Rs} when Rs =/= [] -> Pick(Rs);
        _ -> handcrafted(Kind)
    end.

%% Identifiers of nodes that do not exist, with any creation and wide numbers: NEW_PID_EXT, V4_PORT_EXT
%% and NEWER_REFERENCE_EXT built by hand.
handcrafted(Kind) ->
    Node = lists:nth(rand:uniform(4), ['a@h', 'b@h', 'zzz@127.0.0.1', 'nöde@host']),
    NB = atom_to_binary(Node, utf8),
    A = <<119, (byte_size(NB)), NB/binary>>,
    Cr = case rand:uniform(3) of 1 -> rand:uniform(4); _ -> rand:uniform(1 bsl 32) - 1 end,
    W = fun() -> case rand:uniform(3) of 1 -> rand:uniform(100); _ -> rand:uniform(1 bsl 32) - 1 end end,
    case Kind of
        pids -> binary_to_term(<<131, 88, A/binary, (W()):32, (W()):32, Cr:32>>);
        ports -> Id = case rand:uniform(2) of 1 -> W(); 2 -> rand:uniform(1 bsl 64) - 1 end,
                 binary_to_term(<<131, 120, A/binary, Id:64, Cr:32>>);
        %% OTP 25 hashes three words of any remote ref inside a map key, reading past a shorter one: maps
        %% with 1- or 2-word refs in their keys get an arbitrary internal order, and the BEAM then orders
        %% equal such maps differently run to run. So keys only get refs of 3 to 5 words.
        refs -> Len = case get(in_key) of true -> 2 + rand:uniform(3); _ -> rand:uniform(5) end,
                Ws = << <<(W()):32>> || _ <- lists:seq(1, Len)>>,
                binary_to_term(<<131, 90, Len:16, A/binary, Cr:32, Ws/binary>>)
    end.

%% Pairs worth comparing: unrelated terms, near-copies that differ deep inside, == copies with floats for
%% integers, and terms of one kind.
gen_pair() ->
    A = gen_top(),
    case rand:uniform(10) of
        N when N =< 2 -> {A, gen_top()};
        N when N =< 5 -> {A, mutate(A)};
        N when N =< 7 -> {A, floatify(A)};
        8 -> {A, A};
        _ -> {leaf(), leaf()}
    end.

%% The same term with integers swapped for equal floats where that is exact (== holds, =:= does not).
floatify(T) when is_integer(T), abs(T) < (1 bsl 53) -> case rand:uniform(2) of 1 -> float(T); _ -> T end;
floatify(T) when is_float(T), T == trunc(T), abs(T) < 1.0e15 -> case rand:uniform(2) of 1 -> trunc(T); _ -> T end;
floatify(T) when is_list(T) -> floatify_list(T);
floatify(T) when is_tuple(T) -> list_to_tuple([floatify(X) || X <- tuple_to_list(T)]);
floatify(T) when is_map(T) -> maps:map(fun(_, V) -> floatify(V) end, T);
floatify(T) -> T.
floatify_list([H | T]) -> [floatify(H) | floatify_list(T)];
floatify_list([]) -> [];
floatify_list(T) -> floatify(T).

%% One change somewhere inside.
mutate(T) when is_tuple(T), tuple_size(T) > 0 ->
    I = rand:uniform(tuple_size(T)),
    setelement(I, T, mutate(element(I, T)));
mutate([H | T]) ->
    case rand:uniform(4) of
        1 -> [mutate(H) | T];
        2 -> [H | mutate(T)];
        3 -> [H, leaf() | T];
        4 -> T
    end;
mutate(T) when is_map(T), map_size(T) > 0 ->
    Ks = maps:keys(T),
    K = lists:nth(rand:uniform(length(Ks)), Ks),
    case rand:uniform(4) of
        1 -> T#{K := mutate(maps:get(K, T))};
        2 -> maps:put(in_key(fun() -> mutate(K) end), maps:get(K, T), maps:remove(K, T));
        3 -> maps:put(gen_key(), leaf(), maps:remove(K, T));
        4 -> maps:put(floatify_key(K), maps:get(K, T), maps:remove(K, T))
    end;
mutate(T) when is_integer(T) -> case rand:uniform(3) of 1 -> T + 1; 3 when abs(T) < 1 bsl 1000 -> float(T); _ -> T - 1 end;
mutate(T) when is_float(T) -> case rand:uniform(2) of 1 when abs(T) < 1.0e300 -> T * 1.0000001 + 1.0e-300; _ -> -T end;
mutate(T) when is_binary(T), byte_size(T) > 0 ->
    case rand:uniform(2) of
        1 -> binary:part(T, 0, byte_size(T) - 1);
        2 -> <<T/binary, 0:(rand:uniform(8))>>
    end;
mutate(T) when is_bitstring(T) -> <<T/bitstring, 1:1>>;
mutate(_) -> leaf().

floatify_key(K) when is_integer(K), abs(K) < (1 bsl 53) -> float(K);
floatify_key(K) -> in_key(fun() -> mutate(K) end).

in_key(F) -> Old = put(in_key, true), R = F(), put(in_key, Old), R.
