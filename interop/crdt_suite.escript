#!/usr/bin/env escript
%%! -connect_all false
%% Interop of issue 8: the C CRDT process (horde_compat, started in build/cnode through cnode_ctl) against a
%% BEAM-side delta_crdt peer without Horde: interop/crdt_peer.erl, written from the spec (§2-§3) and checked
%% against 739 captured trees (every captured first-round tree without partial cuts rebuilds byte-exact).
%% This node (c@127.0.0.1) runs the peer 'b.Crdt' holding 10,000 keys; the shared cnode (crcnode@127.0.0.1)
%% runs 'x.Crdt'. Both sync towards each other (so partial-diff rounds run both ways), and the suite checks
%% that they converge: the same LWW read and the same Merkle root (crdt_root). Then, for the MapSet shape of this
%% release's Elixir and the other one, a fresh C CRDT with no mapset option follows a peer storing that shape
%% (issue 18). Run by interop/run.sh with
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

%% Sync ticks of the BEAM peer (the C side has its own timer, sync_interval 100 ms).
ticker() ->
    spawn(fun() -> Loop = fun L() -> try ?PEER ! sync catch error:badarg -> ok end, timer:sleep(100), L() end, Loop() end).

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
    ok({crdt_start, x, [{sync_interval, 100}, {count_bytes, true}]}),
    crdt_peer:start(?PEER, 424242),
    [crdt_peer:call(?PEER, {put, {key, I}, {val, I, <<"beam">>}}) || I <- lists:seq(1, 10000)],
    [ok({crdt_put, x, {ckey, I}, {cval, I}}) || I <- lists:seq(1, 200)],
    %% the same key written on both sides: LWW by Ts (node-local monotonic clocks, as on BEAM)
    [ok({crdt_put, x, {key, I}, {cval, I}}) || I <- lists:seq(1, 20)],
    step("neighbours both ways"),
    ok = crdt_peer:call(?PEER, {neighbours, [{'x.Crdt', ?CN}]}),
    ok({crdt_set_neighbours, x, [{b, node()}]}),
    put(ticker, ticker()),
    Ms = wait_converged("10,200 keys converge", 30000),
    Read = crdt_peer:call(?PEER, read),
    check_keys(Read, base_keys()),
    St = crdt_peer:call(?PEER, stats),
    maps:get(partial_rounds, St, 0) > 0 orelse fail("no partial-diff round reached the BEAM peer: ~p", [St]),
    info("converged in ~b ms; BEAM peer saw ~p", [Ms, St]).

t_changes() ->
    step("writes, overwrites and deletes on both sides"),
    [crdt_peer:call(?PEER, {put, {key, I}, {val, I, <<"new">>}}) || I <- lists:seq(100, 400)],
    [crdt_peer:call(?PEER, {delete, {key, I}}) || I <- lists:seq(500, 550)],
    [ok({crdt_put, x, {key, I}, {cval, I, new}}) || I <- lists:seq(380, 420)],
    [ok({crdt_delete, x, {ckey, I}}) || I <- lists:seq(1, 30)],
    [ok({crdt_delete, x, {key, I}}) || I <- lists:seq(600, 610)],
    Ms = wait_converged("both sides' changes converge", 20000),
    Read = crdt_peer:call(?PEER, read),
    Gone = [{key, I} || I <- lists:seq(500, 550)] ++ [{ckey, I} || I <- lists:seq(1, 30)]
        ++ [{key, I} || I <- lists:seq(600, 610)],
    Want = maps:keys(maps:without(Gone, maps:from_keys(base_keys(), true))),
    %% delta_crdt's own loss, which the C CRDT keeps to stay state-for-state with it (horde-wire pitfall 19): a
    %% delta carries its round's starting vector with newer values, a later write on the C side folds those dots
    %% into its vector, and the next join drops the BEAM's overwrites it has not received, on both sides alike
    %% (test_crdt test_write_after_early_delta, CRDT_KNOWN_LOSS=1). Only those keys may be missing, and it is said.
    Overwritten = maps:from_keys([{key, I} || I <- lists:seq(100, 399)], true),
    Lost = [K || K <- Want, not maps:is_key(K, Read), maps:is_key(K, Overwritten)],
    check_keys(maps:merge(Read, maps:from_keys(Lost, lost)), Want),
    Lost =:= [] orelse info("KNOWN LOSS (delta_crdt's, not fixed): ~ts BEAM overwrites dropped on both sides",
                            [key_summary(Lost)]),
    info("converged again in ~b ms, ~b keys", [Ms, map_size(Read)]).

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
