#!/usr/bin/env escript
%%! -connect_all false
%% Interop of issue 8: the C CRDT process (horde_compat, started in build/cnode through cnode_ctl) against a
%% BEAM-side delta_crdt peer without Horde: interop/crdt_peer.erl, written from the spec (§2-§3) and checked
%% against 739 captured trees (every captured first-round tree without partial cuts rebuilds byte-exact).
%% This node (c@127.0.0.1) runs the peer 'b.Crdt' holding 10,000 keys; the shared cnode (crcnode@127.0.0.1)
%% runs 'x.Crdt'. Both sync towards each other (so partial-diff rounds run both ways), and the suite checks
%% that they converge: the same LWW read and the same Merkle root (crdt_root), and that no write is lost, also
%% after a delta that arrives ahead of its vector (write_after_early_delta, docs/crdt.md). Then, for the MapSet
%% shape of this release's Elixir and the other one, a fresh C CRDT with no mapset option follows a peer storing
%% that shape (issue 18). Run by interop/run.sh with
%% --cnode BIN --repo DIR --build DIR --epmd-port P --free-port P2 --tmp DIR --pidfile F.
%% Output: `ok name` / `FAIL name: reason`, then `crdt_suite: N passed, N failed`.
-mode(compile).

-import(interop_lib, [cfg/1, info/2, step/1, fail/2, flat/2, now_ms/0, main_cnode/0, ctl/3, wait_until/3]).

-define(CN_NAME, "crcnode@127.0.0.1").
-define(CN, 'crcnode@127.0.0.1').
-define(PEER, 'b.Crdt').
-define(T, 10000).

tests() ->
    [{converge_10k, 40, fun t_converge_10k/0},
     {changes_both_sides, 25, fun t_changes/0},
     {write_after_early_delta, 20, fun t_early_delta/0},
     {idle_rounds_send_nothing, 10, fun t_idle/0},
     {mapset_shape_followed, 40, fun t_mapset/0}].

main(Args) ->
    Tmp = arg_value("--tmp", Args),
    Here = filename:dirname(escript:script_name()),
    Compiled = [compile:file(filename:join(Here, F), [{outdir, Tmp}, return_errors])
                || Tmp =/= undefined, F <- ["interop_lib.erl", "crdt_peer.erl"]],
    case Tmp =/= undefined andalso lists:all(fun({ok, _}) -> true; (_) -> false end, Compiled) of
        true -> true = code:add_patha(Tmp);
        false -> io:format("FAIL setup: cannot compile the harness into ~p: ~p~ncrdt_suite: 0 passed, 1 failed~n",
                           [Tmp, Compiled]),
                 halt(1)
    end,
    interop_lib:main(Args, "crdt_suite", tests(),
                     #{node => 'c@127.0.0.1', budget_ms => 130000, shared_cnode => ?CN_NAME,
                       shared_cnode_proc => "cnode_crdt", fail_logs => ["cnode"]}).

arg_value(_, []) -> undefined;
arg_value(K, [K, V | _]) -> V;
arg_value(K, [_ | T]) -> arg_value(K, T).

c(Req) ->
    case ctl(?CN, Req, ?T) of
        {ok, R} -> R;
        timeout -> fail("cnode_ctl: no answer to ~p", [element(1, Req)])
    end.

ok(Req) ->
    case c(Req) of
        ok -> ok;
        Other -> fail("cnode_ctl ~p answered ~p", [element(1, Req), Other])
    end.

%% The sync interval of both sides: 300 ms, Horde's default (CRDT_SUITE_SYNC_MS overrides it). It was 100 ms, but
%% a BEAM CRDT starts a round every tick without waiting for the last (pitfall 18), so a side that needs longer than
%% the interval for a round falls behind without bound: its mailbox grows. A round of this 10,000-key tree that
%% differs in most subtrees encodes and decodes about the whole tree; the C node under ASan on a loaded machine took
%% longer than 100 ms for it (most of that in ASan's allocator), its cnode_ctl calls waited 0.2-2.8 s and the
%% write step of changes_both_sides ran past its 25 s; the plain build on a loaded machine took 7.6 s for it.
sync_ms() -> case os:getenv("CRDT_SUITE_SYNC_MS") of false -> 300; S -> list_to_integer(S) end.

%% Sync ticks of the BEAM peer (the C side has its own timer, the same interval).
ticker() ->
    spawn(fun() ->
                  register(crdt_ticker, self()),
                  Loop = fun L() -> try ?PEER ! sync catch error:badarg -> ok end, timer:sleep(sync_ms()), L() end,
                  Loop()
          end).

converged() ->
    Root = crdt_peer:call(?PEER, root),
    case c({crdt_root, x}) of
        Root -> crdt_peer:call(?PEER, read) =:= c({crdt_read, x});
        _ -> false
    end.

%% Fails (with both sides' key counts and the keys only one side holds) unless both sides converge within Ms.
wait_converged(What, Ms) ->
    T0 = now_ms(),
    wait_until(fun converged/0, Ms, What) orelse
        begin
            B = crdt_peer:call(?PEER, read),
            C = c({crdt_read, x}),
            fail("~ts: not converged after ~b ms: BEAM ~b keys, C ~b keys; only on BEAM ~ts; only on C ~ts",
                 [What, Ms, map_size(B), map_size(C), key_summary(maps:keys(maps:without(maps:keys(C), B))),
                  key_summary(maps:keys(maps:without(maps:keys(B), C)))])
        end,
    now_ms() - T0.

%% The keys a read should hold: Want (a list) against the read's keys; a fail message names the difference.
check_keys(Read, Want) ->
    WantM = maps:from_keys(Want, true),
    Missing = maps:keys(maps:without(maps:keys(Read), WantM)),
    Extra = maps:keys(maps:without(Want, Read)),
    Missing =:= [] andalso Extra =:= [] orelse
        fail("read has ~b keys, want ~b: missing ~ts; extra ~ts",
             [map_size(Read), map_size(WantM), key_summary(Missing), key_summary(Extra)]).

%% "N: [K1, K2, ...]" with the first 60 keys, sorted.
key_summary(Ks) ->
    io_lib:format("~b: ~0p", [length(Ks), lists:sublist(lists:sort(Ks), 60)]).

base_keys() -> [{key, I} || I <- lists:seq(1, 10000)] ++ [{ckey, I} || I <- lists:seq(1, 200)].

t_converge_10k() ->
    main_cnode(),
    step("start the C CRDT x and the BEAM peer b"),
    ok({crdt_start, x, [{sync_interval, sync_ms()}, {count_bytes, true}]}),
    crdt_peer:start(?PEER, 424242),
    [crdt_peer:call(?PEER, {put, {key, I}, {val, I, <<"beam">>}}) || I <- lists:seq(1, 10000)],
    [ok({crdt_put, x, {ckey, I}, {cval, I}}) || I <- lists:seq(1, 200)],
    %% the same key written on both sides: LWW by Ts (node-local monotonic clocks, as on BEAM)
    [ok({crdt_put, x, {key, I}, {cval, I}}) || I <- lists:seq(1, 20)],
    step("neighbours both ways"),
    ok = crdt_peer:call(?PEER, {neighbours, [{'x.Crdt', ?CN}]}),
    ok({crdt_set_neighbours, x, [{b, node()}]}),
    ticker(),
    Ms = wait_converged("10,200 keys converge", 30000),
    Read = crdt_peer:call(?PEER, read),
    check_keys(Read, base_keys()),
    St = crdt_peer:call(?PEER, stats),
    maps:get(partial_rounds, St, 0) > 0 orelse fail("no partial-diff round reached the BEAM peer: ~p", [St]),
    info("converged in ~b ms; BEAM peer saw ~p", [Ms, St]).

t_changes() ->
    step("writes, overwrites and deletes on both sides"),
    T0 = now_ms(),
    [crdt_peer:call(?PEER, {put, {key, I}, {val, I, <<"new">>}}) || I <- lists:seq(100, 400)],
    [crdt_peer:call(?PEER, {delete, {key, I}}) || I <- lists:seq(500, 550)],
    [ok({crdt_put, x, {key, I}, {cval, I, new}}) || I <- lists:seq(380, 420)],
    [ok({crdt_delete, x, {ckey, I}}) || I <- lists:seq(1, 30)],
    [ok({crdt_delete, x, {key, I}}) || I <- lists:seq(600, 610)],
    Writes = now_ms() - T0,
    Ms = wait_converged("both sides' changes converge", 20000),
    Read = crdt_peer:call(?PEER, read),
    Gone = [{key, I} || I <- lists:seq(500, 550)] ++ [{ckey, I} || I <- lists:seq(1, 30)]
        ++ [{key, I} || I <- lists:seq(600, 610)],
    Want = maps:keys(maps:without(Gone, maps:from_keys(base_keys(), true))),
    check_keys(Read, Want),
    %% no write lost: the BEAM overwrites the C side did not touch read as BEAM wrote them, and the C side's as it
    %% wrote them ({key, 380..400}, written on both sides, go by Ts). delta_crdt itself loses BEAM overwrites here
    %% when a delta arrives ahead of its vector (pitfall 19) and the C side then writes that key; the C CRDT keeps
    %% those dots out of its vector (docs/crdt.md), test_crdt test_write_after_early_delta.
    Wrong = [{key, I} || I <- lists:seq(100, 379), maps:get({key, I}, Read) =/= {val, I, <<"new">>}]
        ++ [{key, I} || I <- lists:seq(401, 420), maps:get({key, I}, Read) =/= {cval, I, new}],
    Wrong =:= [] orelse fail("writes lost: ~ts", [key_summary(Wrong)]),
    #{dots_withheld := Withheld, dots_pending := Pending, rounds_skipped := Skipped} = c({crdt_stats, x}),
    info("writes took ~b ms, converged again in ~b ms, ~b keys; the C side withheld ~b dots (~b still pending), "
         "skipped ~b of the peer's rounds", [Writes, Ms, map_size(Read), Withheld, Pending, Skipped]).

%% Pitfall 19 on purpose: with the BEAM peer's ticks stopped, the peer overwrites {key, 700} and then {key, 701}, and
%% the C CRDT gets the delta a round begun before those writes would send: the vector of that start with the current
%% entry of {key, 701} only. The C side then overwrites {key, 701}. delta_crdt would fold the peer's new dot into its
%% vector and claim the write of {key, 700} it never received; once the ticks resume, the next joins would drop
%% {key, 700} on both sides. The C side withholds that dot instead: both sides converge with the peer's {key, 700}
%% and the C side's {key, 701}, one entry each.
t_early_delta() ->
    step("the peer writes {key, 700} and {key, 701} after its round began; the C side gets {key, 701} early"),
    exit(whereis(crdt_ticker), kill),
    timer:sleep(3 * sync_ms() + 200), % rounds in flight end
    #{dots_withheld := W0} = c({crdt_stats, x}),
    V0 = crdt_peer:call(?PEER, vv),
    ok = crdt_peer:call(?PEER, {put, {key, 700}, {val, 700, <<"early">>}}),
    ok = crdt_peer:call(?PEER, {put, {key, 701}, {val, 701, <<"early">>}}),
    Raw = crdt_peer:call(?PEER, {raw, {key, 701}}),
    {'x.Crdt', ?CN} ! {diff, #{'__struct__' => 'Elixir.DeltaCrdt.AWLWWMap', dots => V0, value => #{{key, 701} => Raw}},
                       [{key, 701}]},
    %% a call to the CRDT itself: it has joined the delta before it answers
    #{} = gen_server:call({'x.Crdt', ?CN}, stats, ?T),
    {val, 701, <<"early">>} = maps:get({key, 701}, c({crdt_read, x})),
    step("the C side overwrites {key, 701}; then the ticks resume"),
    ok({crdt_put, x, {key, 701}, {cval, 701, late}}),
    #{dots_withheld := W1, dots_pending := P1} = c({crdt_stats, x}),
    ticker(),
    Ms = wait_converged("after the early delta", 15000),
    Read = crdt_peer:call(?PEER, read),
    {maps:get({key, 700}, Read, missing), maps:get({key, 701}, Read, missing)} =:=
        {{val, 700, <<"early">>}, {cval, 701, late}}
        orelse fail("{key, 700} reads ~0p and {key, 701} ~0p", [maps:get({key, 700}, Read, missing),
                                                              maps:get({key, 701}, Read, missing)]),
    map_size(crdt_peer:call(?PEER, {raw, {key, 701}})) =:= 1
        orelse fail("the peer holds ~0p for {key, 701}", [crdt_peer:call(?PEER, {raw, {key, 701}})]),
    W1 =:= W0 + 1 andalso P1 >= 1 orelse fail("dots_withheld ~b -> ~b, pending ~b: want one more withheld", [W0, W1, P1]),
    #{dots_pending := P2} = c({crdt_stats, x}),
    P2 =:= 0 orelse fail("~b dots still withheld after convergence", [P2]),
    info("converged in ~b ms, {key, 700} kept", [Ms]).

t_idle() ->
    step("equal roots: sync rounds go on but carry no keys"),
    #{keys_sent := K0} = c({crdt_stats, x}),
    S0 = crdt_peer:call(?PEER, stats),
    timer:sleep(1000),
    #{keys_sent := K1, msgs_sent := Sent, bad_messages := Bad} = c({crdt_stats, x}),
    Bad =:= 0 orelse fail("the C CRDT dropped ~b malformed messages", [Bad]),
    S1 = crdt_peer:call(?PEER, stats),
    K1 =:= K0 orelse fail("the C CRDT sent ~b keys while idle", [K1 - K0]),
    maps:get(deltas_in, S1, 0) =:= maps:get(deltas_in, S0, 0)
        orelse fail("the BEAM peer received deltas while idle", []),
    maps:get(syncs, S1) > maps:get(syncs, S0) orelse fail("no BEAM sync rounds while idle", []),
    converged() orelse fail("no longer converged", []),
    info("idle 1 s: C keys_sent unchanged (~b), C messages sent so far ~b", [K1, Sent]).

%% Issue 18: without a mapset option the C CRDT follows the MapSet shape its peers send (Elixir <= 1.14: version
%% => 2; 1.15+: none), and rewrites what it holds in it, so the Merkle roots (which cover the raw entries) agree.
%% The shape this release's Elixir makes is asked of `elixir` and crdt_peer's MapSets are checked against its
%% bytes; then for that shape and the other one a fresh C CRDT, written to first (so it holds V2 entries until a
%% peer speaks), syncs with a crdt_peer storing the shape: both converge and the C side reports the shape.
t_mapset() ->
    main_cnode(),
    Mine = elixir_shape(),
    Other = case Mine of v2 -> plain; plain -> v2 end,
    [shape_round(S, I) || {S, I} <- [{Mine, 1}, {Other, 2}]],
    info("this Elixir writes MapSets ~p; the C CRDT followed ~p and ~p", [Mine, Mine, Other]).

%% v2 | plain: the shape of MapSet.new([{1, 2}]) as the installed Elixir writes it, which must be crdt_peer's.
elixir_shape() ->
    Out = os:cmd("elixir -e 'IO.puts(\"MAPSET \" <> System.version() <> \" \" <> "
                 "Base.encode16(:erlang.term_to_binary(MapSet.new([{1, 2}]))))' 2>&1"),
    case re:run(Out, "MAPSET (\\S+) ([0-9A-F]+)", [{capture, all_but_first, list}]) of
        {match, [Vsn, Hex]} ->
            T = binary_to_term(binary:decode_hex(list_to_binary(Hex))),
            Set = #{'__struct__' => 'Elixir.MapSet', map => #{{1, 2} => []}},
            Shape = case T of
                        Set -> plain;
                        _ when T =:= Set#{version => 2} -> v2;
                        _ -> fail("Elixir ~ts writes MapSet.new([{1, 2}]) as ~0tp, neither shape", [Vsn, T])
                    end,
            step(flat("Elixir ~ts writes MapSets ~p", [Vsn, Shape])),
            Shape;
        nomatch -> fail("cannot ask elixir for its MapSet shape: ~ts", [Out])
    end.

shape_round(Shape, I) ->
    N = list_to_atom("m" ++ integer_to_list(I)),
    PeerN = list_to_atom("q" ++ integer_to_list(I)),
    Peer = list_to_atom(atom_to_list(PeerN) ++ ".Crdt"),
    step(flat("C CRDT ~p (no mapset option) with a peer storing ~p MapSets", [N, Shape])),
    ok({crdt_start, N, [{sync_interval, 100}]}),
    [ok({crdt_put, N, {ck, J}, J}) || J <- lists:seq(1, 50)],
    #{mapset := v2} = c({crdt_stats, N}),
    {ok, _} = crdt_peer:start(Peer, 7000 + I, #{mapset => Shape, sync_interval => 100}),
    [crdt_peer:call(Peer, {put, {pk, J}, J}) || J <- lists:seq(1, 50)],
    ok = crdt_peer:call(Peer, {neighbours, [{list_to_atom(atom_to_list(N) ++ ".Crdt"), ?CN}]}),
    ok({crdt_set_neighbours, N, [{PeerN, node()}]}),
    Same = fun() ->
                   crdt_peer:call(Peer, root) =:= c({crdt_root, N}) andalso
                       crdt_peer:call(Peer, read) =:= c({crdt_read, N})
           end,
    wait_until(Same, 15000, "converged") orelse
        fail("~p MapSets: not converged in 15 s (C reports ~p; BEAM ~b keys, C ~b keys)",
             [Shape, maps:get(mapset, c({crdt_stats, N})), map_size(crdt_peer:call(Peer, read)),
              map_size(c({crdt_read, N}))]),
    100 = map_size(c({crdt_read, N})),
    #{mapset := Shape} = c({crdt_stats, N}).
