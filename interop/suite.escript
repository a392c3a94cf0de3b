#!/usr/bin/env escript
%%! -connect_all false
%% Interop tests of build/cnode against real OTP/Elixir nodes. Started by interop/run.sh, which picks the
%% ports, runs epmd and passes: --cnode BIN --repo DIR --build DIR --epmd-port P --free-port P2 --tmp DIR
%% --pidfile F [--fake] [test...]. The harness is interop/interop_lib.erl, compiled into --tmp at startup:
%% this escript makes itself the distributed node t@127.0.0.1 (with connect_all false, so `global` here does
%% not mesh the peers together), starts cnode and erl/elixir peers as ports, records every OS pid it starts
%% in the pid file (run.sh kills leftovers) and kills them itself after each test. Output: `ok name` or
%% `FAIL name: reason` per test, then `interop: N passed, N failed`, and the file TMP/done (run.sh checks it).
-mode(compile).
-include_lib("kernel/include/file.hrl").

-import(interop_lib, [cfg/1, info/2, step/1, fail/2, flat/2, now_ms/0, random_cookie/0, start_ext/4,
                      wait_line/4, wait_exit/2, mark/1, status/1, tail/2, signal/2, signal_pid/2, own_pid/2,
                      base_env/0, child_pids/1, exe_of/1, port_freed/2, cnode_cmd/1, start_cnode/3,
                      wait_ready/4, main_cnode/0, main_cnode_creation/0, set_main_cnode/2, start_erl/2,
                      start_elixir/3, ctl/3, echo_once/3, flush_all/0, first_diff/2, t2b_diff/2]).

-define(CN_NAME, "cnode@127.0.0.1").
-define(CN, 'cnode@127.0.0.1').
-define(CN_PROC, "cnode").                              % the shared cnode's process/log name

tests() ->
    %% {name, timeout in seconds, fun[, options]}: restart_creation replaces the shared cnode itself and
    %% make_run does not use it, so neither is charged with its exits.
    [{ping_erl, 25, fun t_ping_erl/0},
     {ping_elixir, 40, fun t_ping_elixir/0},
     {term_roundtrip, 60, fun t_term_roundtrip/0},
     {big_binaries, 40, fun t_big_binaries/0},
     {connect_out, 25, fun t_connect_out/0},
     {wrong_cookie, 35, fun t_wrong_cookie/0},
     {nodedown, 45, fun t_nodedown/0},
     {restart_creation, 40, fun t_restart_creation/0, #{shared_cnode => false}},
     {make_run, 90, fun t_make_run/0, #{shared_cnode => false}}].

main(Args) ->
    Tmp = arg_value("--tmp", Args),
    Lib = filename:join(filename:dirname(escript:script_name()), "interop_lib.erl"),
    case Tmp =/= undefined andalso compile:file(Lib, [{outdir, Tmp}, return_errors]) of
        {ok, _} -> true = code:add_patha(Tmp);
        Err -> io:format("FAIL setup: cannot compile ~ts into ~p: ~p~ninterop: 0 passed, 1 failed~n",
                         [Lib, Tmp, Err]),
               halt(1)
    end,
    interop_lib:main(Args, "interop", tests(),
                     #{node => 't@127.0.0.1', budget_ms => 225000, shared_cnode => ?CN_NAME,
                       shared_cnode_proc => ?CN_PROC, fail_logs => ["cnode", "make_run"], done_file => "done"}).

arg_value(_, []) -> undefined;
arg_value(K, [K, V | _]) -> V;
arg_value(K, [_ | T]) -> arg_value(K, T).

%% ---------------------------------------------------------------------------------------------------------
%% 2. ping_erl

t_ping_erl() ->
    Cn = main_cnode(),
    {_, A} = start_erl("a", #{}),
    M = mark(Cn),
    step("pinging the C node from " ++ atom_to_list(A)),
    case erpc:call(A, net_adm, ping, [?CN], 15000) of
        pong -> ok;
        P -> fail("net_adm:ping from ~ts gave ~p", [A, P])
    end,
    Visible = erpc:call(A, erlang, nodes, []),
    Hidden = erpc:call(A, erlang, nodes, [hidden]),
    case {lists:member(?CN, Visible), lists:member(?CN, Hidden)} of
        {true, _} -> ok;
        {false, true} -> fail("the C node is in nodes(hidden) of ~ts, not in nodes(): ~p", [A, Visible]);
        {false, false} -> fail("the C node is not in nodes() of ~ts after pong: ~p", [A, Visible])
    end,
    step("waiting for the nodeup log line"),
    case wait_line(Cn, "cnode: nodeup " ++ atom_to_list(A), M, 5000) of
        {ok, _} -> ok;
        R -> fail("no 'cnode: nodeup ~ts' log line (~p)", [A, R])
    end,
    step("asking cnode_ctl for its nodes"),
    case ctl(?CN, nodes, 5000) of
        {ok, Ns} when is_list(Ns) ->
            lists:member(A, Ns) orelse fail("cnode_ctl nodes does not list ~ts: ~p", [A, Ns]),
            lists:member(node(), Ns) orelse fail("cnode_ctl nodes does not list ~ts: ~p", [node(), Ns]);
        R2 -> fail("cnode_ctl nodes answered ~p", [R2])
    end,
    ok.

%% ---------------------------------------------------------------------------------------------------------
%% 3. ping_elixir

t_ping_elixir() ->
    main_cnode(),
    step("running elixir interop/kv_check.exs"),
    H = start_elixir("e", [filename:join(cfg(repo), "interop/kv_check.exs"), ?CN_NAME], []),
    case wait_exit(H, 30000) of
        {ok, 0} -> info("elixir: ~ts", [tail(H, 5)]), ok;
        {ok, St} -> fail("elixir exited ~p: ~ts", [St, tail(H, 8)]);
        timeout -> fail("elixir did not finish within 30 s: ~ts", [tail(H, 8)])
    end.

%% ---------------------------------------------------------------------------------------------------------
%% 1. term_roundtrip

-define(N_TERMS, 10000).
-define(IN_FLIGHT, 100).
-define(PROBE_N, 25).

t_term_roundtrip() ->
    main_cnode(),
    {_, R} = start_erl("r", #{}),
    step("collecting remote pids/refs/ports from " ++ atom_to_list(R)),
    Remote = #{pid => [erpc:call(R, erlang, whereis, [init]), erpc:call(R, erlang, whereis, [interop_sink]),
                       erpc:call(R, erlang, spawn, [timer, sleep, [infinity]])],
               ref => [erpc:call(R, erlang, make_ref, []) || _ <- lists:seq(1, 4)] ++
                      [erpc:call(R, erlang, alias, [])],
               port => lists:sublist(erpc:call(R, erlang, ports, []), 3)},
    [] =/= maps:get(port, Remote) orelse fail("no ports on ~ts", [R]),
    Local = #{pid => [self(), whereis(init), spawn(fun() -> receive after infinity -> ok end end)],
              ref => [make_ref(), make_ref(), erlang:monitor(process, whereis(init)), erlang:alias()],
              port => lists:sublist(erlang:ports(), 3)},
    put(gen_env, #{remote => Remote, local => Local}),
    Seed = case os:getenv("INTEROP_SEED") of
               false -> erlang:unique_integer([positive]) + erlang:system_time(microsecond) rem 1000000007;
               S -> list_to_integer(S)
           end,
    info("term_roundtrip: seed ~b (rerun with INTEROP_SEED=~b)", [Seed, Seed]),
    rand:seed(exsss, Seed),
    step("generating terms"),
    Kinds = kinds(),
    NK = length(Kinds),
    TG = now_ms(),
    Terms = [begin K = lists:nth(I rem NK + 1, Kinds), {I, K, gen(K, 3)} end || I <- lists:seq(1, ?N_TERMS)],
    info("term_roundtrip: generated in ~.2f s, ~b bytes in external format",
         [(now_ms() - TG) / 1000, lists:sum([erlang:external_size(T) || {_, _, T} <- Terms])]),
    step("echoing terms"),
    erlang:monitor_node(?CN, true),
    T0 = now_ms(),
    {First, Rest} = lists:split(?IN_FLIGHT, Terms),
    [send_echo(T) || T <- First],
    try pipeline(queue:from_list(First), Rest, 0) of
        ok -> ok
    catch
        exit:{fail, Why} ->
            %% Tell the lead which kinds fail, not only the first bad term: probe each kind one at a time.
            erlang:monitor_node(?CN, false),
            step("probing each kind after a failure"),
            Probe = probe_kinds(Kinds, now_ms() + 15000),
            fail("~ts; per-kind probe (~b terms each, one at a time): ~ts", [Why, ?PROBE_N, Probe])
    end,
    Ms = now_ms() - T0,
    erlang:monitor_node(?CN, false),
    info("term_roundtrip: ~b terms of ~b kinds echoed =:= in ~.2f s (~b in flight)",
         [?N_TERMS, NK, Ms / 1000, ?IN_FLIGHT]),
    ok.

probe_kinds(Kinds, Deadline) ->
    timer:sleep(1000),
    flush_all(),
    case net_adm:ping(?CN) of
        pang -> "skipped: the C node is unreachable";
        pong -> probe_report(probe_kinds(Kinds, Deadline, []))
    end.

probe_report(Res) ->
    Bad = [flat("~ts: ~ts", [K, R]) || {K, R} <- Res, R =/= "ok"],
    flat("~b kinds ok, failing: ~ts", [length([ok || {_, "ok"} <- Res]),
                                       case Bad of [] -> "none"; _ -> lists:join("; ", Bad) end]).

probe_kinds([], _, Acc) -> lists:reverse(Acc);
probe_kinds([K | Ks], Deadline, Acc) ->
    case now_ms() > Deadline of
        true -> lists:reverse(Acc, [{K2, "not probed (time)"} || K2 <- [K | Ks]]);
        false ->
            case net_adm:ping(?CN) of
                pang -> lists:reverse(Acc, [{K2, "not probed (C node unreachable)"} || K2 <- [K | Ks]]);
                pong -> probe_kinds(Ks, Deadline, [{K, probe_kind(K, ?PROBE_N)} | Acc])
            end
    end.

probe_kind(_, 0) -> "ok";
probe_kind(K, N) ->
    T = gen(K, 3),
    erlang:monitor_node(?CN, true),
    {echo, ?CN} ! {self(), T},
    R = receive
            {nodedown, ?CN} -> flat("connection dropped on ~tW", [T, 8]);
            X when X =:= T -> ok;
            X -> flat("sent ~tW got ~tW (~ts)", [T, 8, X, 8, first_diff(T, X)])
        after 2000 -> flat("no reply to ~tW", [T, 8])
        end,
    erlang:monitor_node(?CN, false),
    flush_all(),
    case R of ok -> probe_kind(K, N - 1); _ -> R end.

send_echo({_, _, T}) -> {echo, ?CN} ! {self(), T}.

pipeline(Q, Rest, Got) ->
    case queue:out(Q) of
        {empty, _} -> ok;
        {{value, {I, K, T}}, Q2} ->
            receive
                {nodedown, ?CN} ->
                    fail("connection to the C node went down after ~b replies; oldest unanswered #~b (~ts): ~tW",
                         [Got, I, K, T, 12]);
                Reply when Reply =:= T ->
                    %% =:= treats 0.0 and -0.0 as equal on OTP 25; the external format does not.
                    term_to_binary(Reply) =:= term_to_binary(T)
                        orelse fail("reply #~b (~ts) is =:= but encodes differently (sign of a zero float?): "
                                    "sent ~tW got ~tW (~ts)", [I, K, T, 12, Reply, 12, t2b_diff(T, Reply)]),
                    case Rest of
                        [Next | Rest2] -> send_echo(Next), pipeline(queue:in(Next, Q2), Rest2, Got + 1);
                        [] -> pipeline(Q2, [], Got + 1)
                    end;
                Other ->
                    fail("reply #~b (~ts) differs after ~b good replies: sent ~tW got ~tW (~ts)",
                         [I, K, Got, T, 12, Other, 12, first_diff(T, Other)])
            after 10000 ->
                    fail("no reply within 10 s after ~b replies; oldest unanswered #~b (~ts): ~tW",
                         [Got, I, K, T, 12])
            end
    end.

kinds() ->
    [small_int, int, big_int, bignum, float, atom_latin1, atom_utf8, binary, bitstring, string,
     unicode_string, list, improper_list, tuple, large_tuple, map, large_map, local_pid, remote_pid,
     local_ref, remote_ref, local_port, remote_port, export_fun, local_fun, nested, edge].

pick(L) -> lists:nth(rand:uniform(length(L)), L).
r(N) -> rand:uniform(N + 1) - 1.                  % 0..N
sign() -> pick([1, -1]).

gen(small_int, _) -> r(255);
gen(int, _) ->
    case r(3) of
        0 -> pick([-1, 256, -256, 1 bsl 27 - 1, -(1 bsl 27), 1 bsl 27, -(1 bsl 27) - 1, 16#7fffffff,
                   -16#80000000, 16#80000000, -16#80000001]);
        _ -> r(1 bsl 32) - (1 bsl 31)
    end;
gen(big_int, _) ->
    case r(3) of
        0 -> pick([1 bsl 59, 1 bsl 60 - 1, -(1 bsl 60), 1 bsl 63, -(1 bsl 63), 1 bsl 64 - 1,
                   -(1 bsl 64 - 1), 1 bsl 32, -(1 bsl 32)]);
        _ -> sign() * (1 bsl (32 + r(31)) + r(1 bsl 32))
    end;
gen(bignum, _) ->
    case r(4) of
        0 -> pick([1 bsl 64, -(1 bsl 64), 1 bsl 64 + 1, 1 bsl 2040 - 1, -(1 bsl 2040 - 1), 1 bsl 2040,
                   -(1 bsl 2048), 1 bsl 8000]);
        1 -> sign() * (1 bsl (2040 + r(500)) + r(1 bsl 64));   % LARGE_BIG_EXT (> 255 bytes)
        _ -> sign() * (1 bsl (64 + r(300)) + r(1 bsl 40))
    end;
gen(float, _) ->
    case r(3) of
        0 -> pick([0.0, -0.0, 1.0, -1.5, 1.0e308, -1.7976931348623157e308, 5.0e-324, -5.0e-324,
                   2.2250738585072014e-308, math:pi(), 1.0e-10, 123456789.125]);
        _ -> (rand:uniform() - 0.5) * math:pow(10, r(600) - 300)
    end;
gen(atom_latin1, _) ->
    case r(20) of
        0 -> pick(['', list_to_atom(lists:duplicate(255, $x)), list_to_atom(lists:duplicate(255, 255)),
                   true, false, undefined, nil, 'café', 'Ætt', 'ÿ']);
        _ -> list_to_atom([pick(lists:seq($a, $z) ++ lists:seq($A, $Z) ++ "_@. " ++ lists:seq(16#c0, 16#ff))
                           || _ <- lists:seq(1, 1 + r(30))])
    end;
gen(atom_utf8, _) ->
    Chars = [16#4e2d, 16#6587, 16#1F600, 16#3b1, 16#3c9, 16#430, 16#5d0, 16#20ac, 16#10348, $a, $z, 16#e9],
    case r(20) of
        0 -> pick([list_to_atom(lists:duplicate(255, 16#1F600)), '日本語', 'Ωμέγα', list_to_atom([16#10FFFF])]);
        _ -> list_to_atom([pick(Chars) || _ <- lists:seq(1, 1 + r(40))])
    end;
gen(binary, D) ->
    case r(30) of
        0 when D >= 3 -> rand:bytes(1000 + r(70000));
        1 -> <<>>;
        _ -> rand:bytes(r(300))
    end;
gen(bitstring, _) ->
    Bits = 1 + r(6),
    <<(rand:bytes(r(100)))/binary, (r(1 bsl Bits - 1)):Bits>>;
gen(string, D) ->
    case r(40) of
        0 when D >= 3 -> [r(255) || _ <- lists:seq(1, 65535 + r(10))];     % over STRING_EXT's 65535 limit
        1 when D >= 3 -> [r(255) || _ <- lists:seq(1, 65535)];
        _ -> [r(255) || _ <- lists:seq(1, 1 + r(300))]
    end;
gen(unicode_string, _) ->
    [pick([r(127), 16#e9, 16#4e2d, 16#1F600, r(16#D7FF), 16#E000 + r(16#10FFFF - 16#E000)])
     || _ <- lists:seq(1, 1 + r(100))];
gen(list, D) -> [any(D - 1) || _ <- lists:seq(1, r(6))];
gen(improper_list, D) ->
    Tail = case r(4) of
               0 -> any_scalar();
               1 -> {};
               2 -> <<"tail">>;
               _ -> pick([a, 1, 1.5, #{}, self()])
           end,
    case is_list(Tail) of
        true -> [any(D - 1) | a];
        false -> lists:foldl(fun(_, Acc) -> [any(D - 1) | Acc] end, Tail, lists:seq(1, 1 + r(5)))
    end;
gen(tuple, D) -> list_to_tuple([any(D - 1) || _ <- lists:seq(1, r(8))]);
gen(large_tuple, _) ->
    case r(4) of
        0 -> list_to_tuple([r(300) || _ <- lists:seq(1, pick([255, 256, 257, 65535, 65536]))]);
        _ -> list_to_tuple([any_scalar() || _ <- lists:seq(1, 256 + r(300))])
    end;
gen(map, D) -> maps:from_list([{any(D - 2), any(D - 1)} || _ <- lists:seq(1, r(8))]);
gen(large_map, D) ->
    N = case r(4) of 0 -> pick([32, 33, 64, 65, 1000]); _ -> 33 + r(60) end,   % flatmap/HAMT edges
    M = case N of
            1000 -> maps:from_list([{r(1 bsl 40), r(255)} || _ <- lists:seq(1, N)]);
            _ -> maps:from_list([{any_scalar(), any(D - 2)} || _ <- lists:seq(1, N)])
        end,
    Want = min(N, 33),
    case map_size(M) of
        Size when Size >= Want -> M;
        _ -> maps:merge(M, maps:from_list([{{k, I}, any_scalar()} || I <- lists:seq(1, N)]))
    end;
gen(local_pid, _) -> pick(env_terms(local, pid));
gen(remote_pid, _) -> pick(env_terms(remote, pid));
gen(local_ref, _) -> pick(env_terms(local, ref));
gen(remote_ref, _) -> pick(env_terms(remote, ref));
gen(local_port, _) -> pick(env_terms(local, port));
gen(remote_port, _) -> pick(env_terms(remote, port));
gen(export_fun, _) -> pick([fun erlang:abs/1, fun lists:map/2, fun erlang:'+'/2, fun nomodule:nofun/7,
                            fun 'Elixir.Enum':map/2, fun m:f/255, fun 'ünï_mød':'çødé_日本'/0]);
gen(local_fun, D) ->
    E1 = any(D - 1),
    E2 = any_scalar(),
    pick([fun() -> ok end, fun(X) -> {X, E1} end, fun(A, B) -> [A, B, E1, E2] end, fun(_) -> E2 end,
          fun F(0) -> E1; F(N) -> F(N - 1) end]);
gen(nested, _) -> any(4);
gen(edge, _) ->
    pick([[], {}, #{}, <<>>, '', "", [[]], {{}}, #{#{} => #{}}, #{[] => {}, {} => []}, [a | b],
          {self(), make_ref()}, #{self() => fun erlang:abs/1}]).

env_terms(Where, Type) -> maps:get(Type, maps:get(Where, get(gen_env))).

any(D) when D =< 0 -> any_scalar();
any(D) ->
    case r(2) of
        0 -> any_scalar();
        _ -> gen(pick([list, improper_list, tuple, map, local_fun, string, list, tuple, map]), D)
    end.

any_scalar() ->
    gen(pick([small_int, int, big_int, bignum, float, atom_latin1, atom_utf8, binary, bitstring,
              unicode_string, local_pid, remote_pid, local_ref, remote_ref, local_port, remote_port,
              export_fun, edge]), 0).

%% ---------------------------------------------------------------------------------------------------------
%% 8. big_binaries

t_big_binaries() ->
    main_cnode(),
    erlang:monitor_node(?CN, true),
    lists:foreach(
      fun({What, Term}) ->
              step("echoing " ++ What),
              T0 = now_ms(),
              {echo, ?CN} ! {self(), Term},
              receive
                  {nodedown, ?CN} -> fail("connection to the C node went down while echoing ~ts", [What]);
                  R when R =:= Term -> info("big_binaries: ~ts back =:= in ~b ms", [What, now_ms() - T0]);
                  R -> fail("~ts came back different: ~ts", [What, first_diff(Term, R)])
              after 10000 -> fail("~ts: no reply within 10 s", [What])
              end
      end,
      [{"1 MiB binary", rand:bytes(1 bsl 20)},
       {"8 MiB binary", rand:bytes(8 bsl 20)},
       {"8 MiB + 3 bits bitstring", <<(rand:bytes(8 bsl 20))/binary, 5:3>>},
       {"tuple of 1 MiB and 8 MiB binaries", {big, rand:bytes(1 bsl 20), [rand:bytes(8 bsl 20)]}},
       %% The C node writes binaries of 64 KiB or more from the bytes they arrived in (writev), at most 64 per write:
       %% a sub-binary, binaries either side of that size, and more of them in one term than one write takes.
       {"3 MiB sub-binary of a 9 MiB binary", binary:part(rand:bytes(9 bsl 20), 12345, 3 bsl 20)},
       {"map of 64 KiB - 1, 64 KiB and 64 KiB + 1 binaries",
        #{a => rand:bytes(65535), b => rand:bytes(65536), c => rand:bytes(65537), d => <<1, 2, 3>>}},
       {"list of 100 binaries of 100 KiB", [rand:bytes(100 bsl 10) || _ <- lists:seq(1, 100)]}]),
    erlang:monitor_node(?CN, false),
    ok.

%% ---------------------------------------------------------------------------------------------------------
%% 4. connect_out

t_connect_out() ->
    main_cnode(),
    {_, B} = start_erl("b", #{}),
    step("checking that the C node and " ++ atom_to_list(B) ++ " are not connected"),
    {interop_sink, B} ! {'$interop_target', self()},
    case ctl(?CN, nodes, 5000) of
        {ok, Ns} -> lists:member(B, Ns) andalso fail("C node already connected to ~ts before the test", [B]);
        timeout -> fail("cnode_ctl nodes: no reply", [])
    end,
    lists:member(?CN, erpc:call(B, erlang, nodes, [[visible, hidden]]))
        andalso fail("~ts already connected to the C node", [B]),
    step("asking cnode_ctl to send to {interop_sink, B}"),
    Ref = make_ref(),
    Ref1 = make_ref(),
    {cnode_ctl, ?CN} ! {self(), Ref1, {send, {interop_sink, B}, {hello_from_c, Ref}}},
    receive {Ref1, ok} -> ok; {Ref1, Other} -> fail("cnode_ctl replied ~p", [Other])
    after 10000 -> fail("cnode_ctl did not reply {Ref, ok} within 10 s", [])
    end,
    step("waiting for B's interop_sink to receive {hello_from_c, Ref}"),
    receive {interop_sink, B, {hello_from_c, Ref}} -> ok
    after 10000 -> fail("interop_sink on ~ts did not receive {hello_from_c, Ref} within 10 s", [B])
    end,
    step("sending to B's sink by pid"),
    SinkPid = erpc:call(B, erlang, whereis, [interop_sink]),
    Ref2 = make_ref(),
    {cnode_ctl, ?CN} ! {self(), Ref2, {send, SinkPid, {hello_by_pid, Ref2}}},
    receive {interop_sink, B, {hello_by_pid, Ref2}} -> ok
    after 10000 -> fail("sink on ~ts did not receive a message sent by pid within 10 s", [B])
    end,
    lists:member(?CN, erpc:call(B, erlang, nodes, []))
        orelse fail("~ts does not list the C node in nodes() after it connected", [B]),
    ok.

%% ---------------------------------------------------------------------------------------------------------
%% 5. wrong_cookie

t_wrong_cookie() ->
    Cn = main_cnode(),
    Bad = random_cookie(),
    erlang:set_cookie('w@127.0.0.1', list_to_atom(Bad)),
    {_, W} = start_erl("w", #{cookie => Bad, args => ["-connect_all", "false"]}),
    {interop_sink, W} ! {'$interop_target', self()},
    step("pinging the C node with a wrong cookie"),
    M1 = mark(Cn),
    case erpc:call(W, net_adm, ping, [?CN], 15000) of
        pang -> ok;
        P -> fail("ping with a wrong cookie gave ~p", [P])
    end,
    CookieLine = ["handshake with", "failed", "cookie"],
    step("waiting for the incoming handshake failure log line"),
    case wait_line(Cn, CookieLine, M1, 5000) of
        {ok, L1} -> info("incoming: ~ts", [L1]);
        R1 -> fail("no 'handshake with ... failed: ...cookie...' line after a wrong-cookie ping (~p)", [R1])
    end,
    step("asking cnode_ctl to send to a node with another cookie"),
    M2 = mark(Cn),
    Ref = make_ref(),
    {cnode_ctl, ?CN} ! {self(), Ref, {send, {interop_sink, W}, {hello_wrong_cookie, Ref}}},
    case wait_line(Cn, CookieLine, M2, 10000) of
        {ok, L2} -> info("outgoing: ~ts", [L2]);
        R2 -> fail("no 'handshake with ... failed: ...cookie...' line after connecting out to a "
                   "wrong-cookie node (~p)", [R2])
    end,
    receive {Ref, ok} -> ok after 2000 -> info("(cnode_ctl sent no {Ref, ok} for the failed send)", []) end,
    receive {interop_sink, W, {hello_wrong_cookie, Ref}} -> fail("the message reached the wrong-cookie node", [])
    after 500 -> ok
    end,
    step("checking the C node still answers a correct cookie"),
    erlang:disconnect_node(?CN),
    timer:sleep(200),
    case net_adm:ping(?CN) of
        pong -> ok;
        P2 -> fail("after the cookie failures, ping from ~ts gave ~p", [node(), P2])
    end,
    T = {still, alive, make_ref(), <<"ok">>},
    case echo_once(?CN, T, 5000) of
        T -> ok;
        Other -> fail("echo after the cookie failures gave ~p", [Other])
    end,
    ok.

%% ---------------------------------------------------------------------------------------------------------
%% 6. nodedown

t_nodedown() ->
    Tick = 4,
    Name = "cnodetick@127.0.0.1",
    {Cn, _} = start_cnode("cnodetick", Name, ["--ticktime", integer_to_list(Tick)]),
    %% The peers tick at the same rate; this node (ticktime 60) never connects to cnodetick.
    Ping = "io:format(\"PING ~p~n\", [net_adm:ping('" ++ Name ++ "')]),",
    PeerOpts = #{args => ["-kernel", "net_ticktime", integer_to_list(Tick)], eval => Ping},
    {X, XN} = start_erl("x", PeerOpts),
    {Y, YN} = start_erl("y", PeerOpts),
    [case wait_line(P, "PING ", 0, 1000) of
         {ok, "PING pong"} -> ok;
         R -> fail("~ts could not ping ~ts: ~p", [N, Name, R])
     end || {P, N} <- [{X, XN}, {Y, YN}]],
    [case wait_line(Cn, "cnode: nodeup " ++ atom_to_list(N), 0, 5000) of
         {ok, _} -> ok;
         R -> fail("no 'nodeup ~ts' line (~p)", [N, R])
     end || N <- [XN, YN]],
    step("kill -9 of x"),
    M1 = mark(Cn),
    T1 = now_ms(),
    signal(X, "KILL"),
    case wait_line(Cn, "cnode: nodedown " ++ atom_to_list(XN), M1, Tick * 1000 + 1000) of
        {ok, L1} -> info("nodedown after kill -9 in ~b ms: ~ts", [now_ms() - T1, L1]);
        R1 -> fail("no 'nodedown ~ts' within ~b s of kill -9 (~p)", [XN, Tick + 1, R1])
    end,
    step("SIGSTOP of y (only ticks can tell)"),
    M2 = mark(Cn),
    T2 = now_ms(),
    signal(Y, "STOP"),
    Limit = Tick * 1250 + 3000,
    R2 = wait_line(Cn, "cnode: nodedown " ++ atom_to_list(YN), M2, Limit),
    Took = now_ms() - T2,
    signal(Y, "KILL"),
    case R2 of
        {ok, L2} when Took < 2000 -> fail("nodedown of the stopped node after only ~b ms (not tick-based?): ~ts",
                                          [Took, L2]);
        {ok, L2} -> info("nodedown of a SIGSTOPped node after ~b ms (ticktime ~b s): ~ts", [Took, Tick, L2]);
        R -> fail("no 'nodedown ~ts' within ~b ms of SIGSTOP with ticktime ~b (~p)", [YN, Limit, Tick, R])
    end,
    case status(Cn) of
        running -> ok;
        St -> fail("cnodetick exited: ~p", [St])
    end,
    ok.

%% ---------------------------------------------------------------------------------------------------------
%% 7. restart_creation

t_restart_creation() ->
    H1 = main_cnode(),
    C1 = main_cnode_creation(),
    put(scope, suite),                                     % the new instances are the shared cnode
    H2 = restart(H1, "TERM"),
    C2 = wait_ready(H2, ?CN_NAME, 0, 15000),
    set_main_cnode(H2, C2),
    C2 =/= C1 orelse fail("creation unchanged after restart: ~b", [C1]),
    reachable(),
    H3 = restart(H2, case cfg(fake) of true -> "TERM"; false -> "INT" end),
    C3 = wait_ready(H3, ?CN_NAME, 0, 15000),
    set_main_cnode(H3, C3),
    (C3 =/= C2 andalso C3 =/= C1) orelse fail("creation repeated after second restart: ~b, ~b, ~b", [C1, C2, C3]),
    reachable(),
    info("creations: ~b, ~b, ~b", [C1, C2, C3]),
    ok.

restart(H, Sig) ->
    step("stopping cnode with SIG" ++ Sig),
    erlang:monitor_node(?CN, true),
    signal(H, Sig),
    case wait_exit(H, 10000) of
        {ok, 0} -> ok;
        {ok, St} -> fail("cnode exited with status ~p on SIG~ts: ~ts", [St, Sig, tail(H, 5)]);
        timeout -> fail("cnode did not exit within 10 s of SIG~ts", [Sig])
    end,
    receive {nodedown, ?CN} -> ok after 5000 -> fail("no nodedown of the C node after it exited", []) end,
    step("starting cnode again after SIG" ++ Sig),
    {Exe, Args} = cnode_cmd(["--name", ?CN_NAME, "--cookie", cfg(cookie), "--epmd-port", cfg('epmd-port'),
                             "--listen", "0"]),
    H2 = start_ext(?CN_PROC, Exe, Args, base_env()),
    set_main_cnode(H2, undefined),                         % the shared cnode from now on, even if not ready
    H2.

reachable() ->
    step("pinging the restarted cnode"),
    case net_adm:ping(?CN) of
        pong -> ok;
        P -> fail("restarted cnode: ping gave ~p", [P])
    end,
    T = {restarted, make_ref(), self()},
    case echo_once(?CN, T, 5000) of
        T -> ok;
        O -> fail("restarted cnode: echo gave ~p", [O])
    end.

%% ---------------------------------------------------------------------------------------------------------
%% 9. make_run

t_make_run() ->
    Port = cfg('free-port'),
    case gen_tcp:connect({127,0,0,1}, list_to_integer(Port), [], 500) of
        {ok, S} -> gen_tcp:close(S), fail("something already listens on spare port ~ts", [Port]);
        _ -> ok
    end,
    Home = filename:join(cfg(tmp), "fresh_home"),
    ok = filelib:ensure_dir(filename:join(Home, "x")),
    CookieFile = filename:join(Home, ".erlang.cookie"),
    Env = [{"HOME", Home}, {"ERL_EPMD_PORT", Port}, {"ERL_EPMD_ADDRESS", "127.0.0.1"}, {"MAKEFLAGS", false},
           {"MAKELEVEL", false}, {"MFLAGS", false}, {"ERL_FLAGS", false}, {"ERL_AFLAGS", false}, {"ERL_ZFLAGS", false}],
    step("running make run"),
    MakeArgs = case cfg(fake) of
                   true ->
                       Dir = filename:join(cfg(tmp), "fake_make"),
                       ok = filelib:ensure_dir(filename:join(Dir, "x")),
                       ok = file:write_file(filename:join(Dir, "Makefile"),
                                            ["run:\n\texec escript ", cfg(repo), "/interop/fake_cnode.escript\n"]),
                       ["-C", Dir, "run"];
                   false ->
                       case filename:join(cfg(repo), "build") =:= cfg(build) of
                           true -> ["-C", cfg(repo), "run"];
                           false -> ["-C", cfg(repo), "run", "BUILD=" ++ cfg(build)]
                       end
               end,
    Make = start_ext("make_run", os:find_executable("make"), MakeArgs, Env),
    case wait_line(Make, ["cnode: node ", " ready"], 0, 60000) of
        {ok, Ready} -> info("make run: ~ts", [Ready]);
        R -> fail("make run printed no ready line (~p): ~ts", [R, tail(Make, 8)])
    end,
    %% make runs `exec build/cnode` in a child shell: the cnode is make's child.
    CPid = case child_pids(maps:get(ospid, Make)) of
               [C] -> own_pid(C, "cnode_from_make"), C;
               Cs -> fail("expected one child of make (the cnode), found ~p", [Cs])
           end,
    info("make run: make pid ~b, cnode pid ~b (~ts)", [maps:get(ospid, Make), CPid, exe_of(CPid)]),
    %% Nothing listened on the port: cnode serves EPMD itself (the fake stand-in starts OTP's epmd instead).
    EPid = case cfg(fake) of
               false ->
                   case wait_line(Make, "cnode: started embedded EPMD server on port ", 0, 100) of
                       {ok, EL} ->
                           string:find(EL, "port " ++ Port) =/= nomatch
                               orelse fail("cnode started its EPMD server on the wrong port (want ~ts): ~ts",
                                           [Port, EL]),
                           embedded;
                       R2 -> fail("no 'cnode: started embedded EPMD server on port ~ts' line though nothing "
                                  "listened there (~p)", [Port, R2])
                   end;
               true ->
                   {ok, EL} = wait_line(Make, "cnode: started epmd (pid ", 0, 100),
                   {match, [EP]} = re:run(EL, "started epmd \\(pid (\\d+)\\)", [{capture, all_but_first, list}]),
                   own_pid(list_to_integer(EP), "epmd_from_cnode"),
                   list_to_integer(EP)
           end,
    step("reading the created cookie"),
    Cookie = case file:read_file(CookieFile) of
                 {ok, B} -> string:trim(binary_to_list(B));
                 E -> fail("no ~ts after make run: ~p", [CookieFile, E])
             end,
    Cookie =/= "" orelse fail("~ts is empty", [CookieFile]),
    {ok, #file_info{mode = Mode}} = file:read_file_info(CookieFile),
    Mode band 8#077 =:= 0 orelse fail("~ts is readable by others (mode ~.8b)", [CookieFile, Mode band 8#777]),
    case wait_line(Make, ["iex --name", "--cookie"], 0, 100) of
        {ok, Hint} -> info("make run: ~ts", [Hint]);
        _ -> fail("no line with 'iex --name' and '--cookie' for the user to paste", [])
    end,
    step("elixir Node.ping with the created cookie"),
    Ex = start_ext("elixir_a", os:find_executable("elixir"),
                   ["--name", "a@127.0.0.1", "--cookie", Cookie, "-e", "IO.inspect(Node.ping(:\"" ?CN_NAME "\"))"],
                   Env),
    case wait_exit(Ex, 30000) of
        {ok, 0} -> ok;
        X -> fail("elixir ping did not finish cleanly (~p): ~ts", [X, tail(Ex, 5)])
    end,
    case wait_line(Ex, ":pong", 0, 100) of
        {ok, _} -> ok;
        _ -> fail("elixir Node.ping did not print :pong: ~ts", [tail(Ex, 5)])
    end,
    step("stopping the cnode of make run"),
    signal_pid(CPid, "TERM"),
    case wait_exit(Make, 10000) of
        {ok, 0} -> ok;
        {ok, St} -> fail("make run exited with ~p after SIGTERM to the cnode: ~ts", [St, tail(Make, 5)]);
        timeout -> fail("make run did not exit within 10 s of SIGTERM to the cnode", [])
    end,
    case EPid of
        embedded -> ok; %% the EPMD server lived inside the cnode: the port frees as it exits
        _ -> step("killing the epmd cnode started"), signal_pid(EPid, "TERM")
    end,
    port_freed(list_to_integer(Port), 30) orelse
        fail("something still listens on ~ts after the cnode (and its EPMD server) stopped", [Port]),
    ok.
