%% crdt_peer: a small BEAM-side delta_crdt 0.6 peer written from ../shared/spec/horde-wire.md §2-§3 (no Horde,
%% no delta_crdt code), for interop/crdt_suite.escript. One process registered as Name holds an AW-LWW map
%% (§2.2-§2.5) and a merkle_map tree kept up to date with it key by key (§3.1-§3.4), and speaks the four sync
%% messages of §2.6 with the C CRDT process. It starts a sync round to each neighbour on every `sync` message
%% (the suite sends them; no timer) and counts what it saw so the suite can tell partial-diff rounds happened.
%%
%% start/3 and start_link/3 take options for a peer that behaves like a CausalCrdt under Horde (used by
%% interop/horde_standin.ex):
%%   sync_interval => Ms   a sync timer (§2.8), re-armed after each tick; without it only `sync` messages sync
%%   on_diffs => Pid | {M, F, A}   after every join or local write that changed raw entries, the read diffs
%%                         [{add, K, V} | {remove, K}] (§2.5): Pid ! {crdt_update, Diffs}, or apply(M, F, A ++ [Diffs])
%%   monitor => true       monitor neighbours (name tuples) and sync only monitored ones; 'DOWN' drops the monitor
%%                         and the next tick monitors again (§2.7, §2.8)
%%   mapset => v2 | plain  the MapSet shape stored and sent: Elixir <= 1.14 (version => 2, the default) or >= 1.15
%% Node id: Id, or random in 1..1e9 when Id is `random`. The process also takes {set_neighbours, List} (Horde's
%% local message; starts a sync at once) and the calls {raw, K} (raw entries or undefined), vv and neighbours.
-module(crdt_peer).
-export([start/2, start/3, start_link/3, call/2, call/3]).
-export([loop/1, build/1, subtree/3, continue/2, read/1, update/3]).

start(Name, Id) ->
    P = spawn(fun() -> register(Name, self()), loop(new(Name, Id)) end),
    P.

start(Name, Id, Opts) -> start_(Name, Id, Opts, spawn).
%% {ok, Pid} once Name is registered (usable as a supervisor child's start function).
start_link(Name, Id, Opts) -> start_(Name, Id, Opts, spawn_link).

start_(Name, Id0, Opts, How) ->
    Parent = self(),
    Ref = make_ref(),
    Id = case Id0 of random -> rand:uniform(1000000000); _ -> Id0 end,
    P = erlang:How(fun() ->
                           true = register(Name, self()),
                           S = arm(maps:merge(new(Name, Id), opts(Opts))),
                           Parent ! {Ref, started},
                           loop(S)
                   end),
    receive {Ref, started} -> {ok, P} after 5000 -> exit(P, kill), {error, timeout} end.

opts(O) ->
    #{interval => maps:get(sync_interval, O, undefined), on_diffs => maps:get(on_diffs, O, undefined),
      monitor => maps:get(monitor, O, false), shape => maps:get(mapset, O, v2)}.

arm(S = #{interval := undefined}) -> S;
arm(S = #{interval := I}) -> erlang:send_after(I, self(), '$sync_tick'), S.

call(Name, Req) -> call(Name, Req, 60000).
call(Name, Req, T) ->
    Ref = make_ref(),
    Name ! {call, self(), Ref, Req},
    receive {Ref, R} -> R after T -> exit({crdt_peer_timeout, Req}) end.

new(Name, Id) ->
    #{name => Name, id => Id, vv => #{}, values => #{}, tree => [], dirty => false, nbrs => [],
      stats => #{}, interval => undefined, on_diffs => undefined, monitor => false, mons => #{}, shape => v2}.

bump(K, S = #{stats := St}) -> S#{stats := maps:update_with(K, fun(V) -> V + 1 end, 1, St)}.

%% ---- the process --------------------------------------------------------------------------------------------

loop(S0) ->
    S = receive M -> handle(M, S0) end,
    ?MODULE:loop(S).

handle({call, From, Ref, Req}, S) ->
    {R, S1} = call_req(Req, S),
    From ! {Ref, R},
    S1;
handle(sync, S) -> sync(S);
handle('$sync_tick', S) -> arm(sync(S));
handle({set_neighbours, Ns}, S) when is_list(Ns) -> sync(set_nbrs(Ns, S));
handle({'DOWN', Ref, process, _, _}, S = #{monitor := true, mons := Mons}) ->
    bump(downs, S#{mons := maps:filter(fun(_, R) -> R =/= Ref end, Mons)});
handle({diff, D = #{'__struct__' := 'Elixir.DeltaCrdt.CausalCrdt.Diff'}}, S0) ->
    S1 = tree(bump(diffs_in, S0)),
    #{continuation := #{trees := Trees}} = D,
    S = case [L || {L, _} <- Trees, L =/= <<>>] of [] -> S1; _ -> bump(partial_rounds, S1) end,
    D1 = swap(D),
    case continue(maps:get(continuation, D1), maps:get(tree, S)) of
        {continue, C} -> send(maps:get(to, D1), {diff, D1#{continuation := C}}), S;
        {ok, []} -> ack(D1), S;
        {ok, Keys} ->
            case maps:get(originator, D1) =:= maps:get(to, D1) of
                true -> send(maps:get(to, D1), {get_diff, D1, Keys});
                false -> send(maps:get(to, D1), {diff, delta(maps:get(dots, D1), Keys, S), Keys})
            end,
            ack(D1),
            bump(key_lists, S)
    end;
handle({get_diff, D, Keys}, S) ->
    D1 = swap(D),
    send(maps:get(to, D1), {diff, delta(maps:get(dots, D1), Keys, S), Keys}),
    ack(D1),
    bump(get_diffs_in, S);
handle({diff, #{'__struct__' := 'Elixir.DeltaCrdt.AWLWWMap', dots := DVV, value := DV}, Keys}, S) when is_list(Keys) ->
    bump(deltas_in, notify(Keys, S, join(DVV, DV, Keys, S)));
handle({ack_diff, _}, S) -> bump(acks_in, S);
handle(Other, S) -> exit({unexpected_message, Other, S}).

call_req({neighbours, Ns}, S) -> {ok, set_nbrs(Ns, S)};
call_req(neighbours, S) -> {maps:get(nbrs, S), S};
call_req({put, K, V}, S) -> {ok, notify([K], S, add(K, V, S))};
call_req({delete, K}, S) -> {ok, notify([K], S, remove(K, S))};
call_req({raw, K}, S) -> {maps:get(K, maps:get(values, S), undefined), S};
call_req(vv, S) -> {maps:get(vv, S), S};
call_req(read, S) -> {read(maps:get(values, S)), S};
call_req(root, S0) -> S = tree(S0), {root(maps:get(tree, S)), S};
call_req(stats, S) -> {maps:get(stats, S), S}.

send(To, Msg) -> erlang:send(To, Msg), ok.

%% A sync round to every neighbour (every monitored one, with `monitor`), §2.7 step 1.
sync(S0) ->
    S1 = monitor_nbrs(S0),
    S = tree(S1),
    Cont0 = cont(S, [<<>>], []),
    Me = self(),
    [send(N, {diff, diff(Cont0, vv(S), Me, Me, N)}) || N <- sync_targets(S), N =/= Me],
    bump(syncs, S).

sync_targets(#{monitor := false, nbrs := Ns}) -> Ns;
sync_targets(#{nbrs := Ns, mons := Mons}) -> [N || N <- Ns, maps:is_key(N, Mons)].

monitor_nbrs(S = #{monitor := false}) -> S;
monitor_nbrs(S = #{nbrs := Ns, mons := Mons}) ->
    S#{mons := lists:foldl(fun(N, M) ->
                                   case maps:is_key(N, M) of
                                       true -> M;
                                       false -> try M#{N => erlang:monitor(process, N)} catch error:badarg -> M end
                                   end
                           end, Mons, Ns)}.

%% New neighbours; monitors of peers that are no longer neighbours are dropped.
set_nbrs(Ns, S = #{mons := Mons}) ->
    {Keep, Drop} = maps:fold(fun(N, R, {K, D}) ->
                                     case lists:member(N, Ns) of true -> {K#{N => R}, D}; false -> {K, [R | D]} end
                             end, {#{}, []}, Mons),
    [erlang:demonitor(R, [flush]) || R <- Drop],
    S#{nbrs := Ns, mons := Keep}.

%% on_diffs (§2.5): for the keys whose raw entries changed, the changes of the LWW read.
notify(_, _, S = #{on_diffs := undefined}) -> S;
notify(Keys, #{values := Old}, S = #{values := New, on_diffs := To}) ->
    Changed = [K || K <- lists:usort(Keys), maps:get(K, Old, undefined) =/= maps:get(K, New, undefined)],
    case Changed of
        [] -> S;
        _ ->
            Diffs = lists:append(
                      [case {read_key(K, Old), read_key(K, New)} of
                           {V, V} -> [];
                           {_, nil} -> [{remove, K}];
                           {_, V} -> [{add, K, V}]
                       end || K <- Changed]),
            case To of
                {M, F, A} -> apply(M, F, A ++ [Diffs]);
                _ -> To ! {crdt_update, Diffs}
            end,
            S
    end.

read_key(K, Vals) ->
    case Vals of
        #{K := E} -> maps:get(K, read(#{K => E}));
        _ -> nil
    end.

diff(Cont, Dots, Orig, From, To) ->
    #{'__struct__' => 'Elixir.DeltaCrdt.CausalCrdt.Diff', continuation => Cont, dots => Dots,
      originator => Orig, from => From, to => To}.

swap(D = #{from := F, to := T}) -> D#{from := T, to := F}.

ack(D = #{originator := O}) ->
    case O =:= self() of
        true -> self() ! {ack_diff, maps:get(to, D)};
        false -> send(O, {ack_diff, maps:get(from, D)})
    end.

%% ---- AW-LWW map (§2.2-§2.5) ------------------------------------------------------------------------------

vv(#{vv := VV}) -> VV.
mapset(v2, Dots) -> #{'__struct__' => 'Elixir.MapSet', map => maps:from_list([{D, []} || D <- Dots]), version => 2};
mapset(plain, Dots) -> #{'__struct__' => 'Elixir.MapSet', map => maps:from_list([{D, []} || D <- Dots])}.
dots(#{'__struct__' := 'Elixir.MapSet', map := M}) -> maps:keys(M).
covered({I, C}, VV) -> C =< maps:get(I, VV, 0).

add(K, V, S = #{id := Id, vv := VV, values := Vals}) ->
    C = maps:get(Id, VV, 0) + 1,
    Ts = erlang:monotonic_time(nanosecond),
    changed([K], S#{vv := VV#{Id => C}, values := Vals#{K => #{{V, Ts} => mapset(shape(S), [{Id, C}])}}}).

shape(S) -> maps:get(shape, S, v2).

remove(K, S = #{values := Vals}) -> changed([K], S#{values := maps:remove(K, Vals)}).

%% The keys whose entries changed since the tree was last brought up to date (dirty: false or a set of keys).
changed(Ks, S = #{dirty := false}) -> changed(Ks, S#{dirty := #{}});
changed(Ks, S = #{dirty := D}) -> S#{dirty := lists:foldl(fun(K, A) -> A#{K => true} end, D, Ks)}.

join(DVV, DV, Keys, S = #{vv := VV, values := Vals}) ->
    VV1 = maps:fold(fun(I, C, A) -> A#{I => max(C, maps:get(I, A, 0))} end, VV, DVV),
    Vals1 = lists:foldl(
              fun(K, A) ->
                      E1 = maps:get(K, Vals, #{}), E2 = maps:get(K, DV, #{}),
                      E = maps:fold(
                            fun(EK, _, EA) ->
                                    S1 = case E1 of #{EK := M1} -> dots(M1); _ -> [] end,
                                    S2 = case E2 of #{EK := M2} -> dots(M2); _ -> [] end,
                                    R = lists:usort([D || D <- S1, lists:member(D, S2)] ++
                                                    [D || D <- S1, not covered(D, DVV)] ++
                                                    [D || D <- S2, not covered(D, VV)]),
                                    case R of [] -> EA; _ -> EA#{EK => mapset(shape(S), R)} end
                            end, #{}, maps:merge(E1, E2)),
                      case map_size(E) of 0 -> maps:remove(K, A); _ -> A#{K => E} end
              end, Vals, Keys),
    case Vals1 =:= Vals of
        true -> S#{vv := VV1};
        false -> changed([K || K <- Keys, maps:get(K, Vals, none) =/= maps:get(K, Vals1, none)],
                         S#{vv := VV1, values := Vals1})
    end.

delta(Dots, Keys, #{values := Vals}) ->
    #{'__struct__' => 'Elixir.DeltaCrdt.AWLWWMap', dots => Dots, value => maps:with(Keys, Vals)}.

%% LWW read: the entry with the greatest Ts; ties: the first in map order.
read(Vals) ->
    maps:map(fun(_, E) ->
                     [{{V0, T0}, _} | Rest] = lists:sort(maps:to_list(E)),
                     {V, _} = lists:foldl(fun({{V1, T1}, _}, {_, TB}) when T1 > TB -> {V1, T1};
                                             (_, Acc) -> Acc end, {V0, T0}, Rest),
                     V
             end, Vals).

%% ---- merkle_map (§3) ---------------------------------------------------------------------------------------

h(T) -> <<(erlang:phash2(T, 4294967296)):32>>.
hof([]) -> [];
hof(T) -> element(1, T).

%% The tree after the changed keys: each is put into it or taken out where the canonical tree has it, the same
%% tree build/1 gives for the whole map (rebuilt whole for every change, a registry of 100,000 keys made rounds
%% pile up); when more than a quarter of the keys changed, build/1 is quicker.
tree(S = #{dirty := false}) -> S;
tree(S = #{values := Vals, dirty := D}) when map_size(D) * 4 > map_size(Vals) -> % most keys: the whole map
    S#{tree := build(Vals), dirty := false};
tree(S = #{values := Vals, tree := T, dirty := D}) ->
    S#{tree := maps:fold(fun(K, _, Acc) -> update(Acc, K, maps:find(K, Vals)) end, T, D), dirty := false}.

%% Tree T with key K at {ok, Raw}, or without it (error).
update(T, K, Found) -> upd(T, erlang:phash2(K, 4294967296), K, Found, 0).

upd([], _, _, error, _) -> [];
upd([], H, K, {ok, V}, _) -> leaf(H, #{K => V});
upd({_, {<<H:32>>, C}}, H, K, Found, _) -> % the leaf of K's hash
    case Found of {ok, V} -> leaf(H, C#{K => V}); error -> leaf(H, maps:remove(K, C)) end;
upd(T = {_, {<<H2:32>>, C2}}, H, K, Found, D) -> % another hash's leaf: both under one new inner node
    case Found of error -> T; {ok, V} -> grow(lists:sort([{H, #{K => V}}, {H2, C2}]), D) end;
upd({_, L, R}, H, K, Found, D) ->
    {L1, R1} = case (H bsr (31 - D)) band 1 of
                   0 -> {upd(L, H, K, Found, D + 1), R};
                   1 -> {L, upd(R, H, K, Found, D + 1)}
               end,
    case {L1, R1} of % a leaf left alone under an inner node moves up, as build/1 places it
        {[], []} -> [];
        {[], {_, {_, _}}} -> R1;
        {{_, {_, _}}, []} -> L1;
        _ -> {h({hof(L1), hof(R1)}), L1, R1}
    end.

leaf(_, C) when map_size(C) =:= 0 -> [];
leaf(H, C) -> {h(C), {<<H:32>>, C}}.

root([]) -> <<>>;
root(T) -> element(1, T).

%% The canonical tree of a key => raw value map: split by key-hash bits until a subtree holds one key hash.
build(Vals) ->
    Items = lists:sort([{erlang:phash2(K, 4294967296), K, V} || {K, V} <- maps:to_list(Vals)]),
    grow(group(Items), 0).

group([]) -> [];
group([{H, K, V} | T]) ->
    {Same, Rest} = lists:splitwith(fun({H2, _, _}) -> H2 =:= H end, T),
    [{H, maps:from_list([{K, V} | [{K2, V2} || {_, K2, V2} <- Same]])} | group(Rest)].

grow([], _) -> [];
grow([{H, C}], _) -> {h(C), {<<H:32>>, C}};
grow(Gs, D) ->
    {L, R} = lists:partition(fun({H, _}) -> (H bsr (31 - D)) band 1 =:= 0 end, Gs),
    LT = grow(L, D + 1), RT = grow(R, D + 1),
    {h({hof(LT), hof(RT)}), LT, RT}.

subtree(T, Loc, N) -> cut(walk(T, Loc), Loc, N).
walk(T, <<>>) -> T;
walk([], _) -> [];
walk({_, L, R}, <<B:1, Rest/bits>>) -> walk(case B of 0 -> L; 1 -> R end, Rest);
walk(Leaf, _) -> Leaf.

cut([], _, _) -> [];
cut(T, _, _) when tuple_size(T) =:= 2 -> T; % a leaf: copied whole
cut({_, _, _}, Loc, 0) -> {partial, Loc};
cut({H, L, R}, Loc, N) -> {H, cut(L, <<Loc/bits, 0:1>>, N - 1), cut(R, <<Loc/bits, 1:1>>, N - 1)}.

mt(T) -> #{'__struct__' => 'Elixir.MerkleMap.MerkleTree', tree => T}.
cont(#{tree := T}, Locs, Keys) -> cont_t(T, Locs, Keys).
cont_t(T, Locs, Keys) ->
    #{'__struct__' => 'Elixir.MerkleMap.MerkleTree.Diff', trees => [{L, mt(subtree(T, L, 8))} || L <- Locs],
      keys => Keys}.

everything([]) -> [];
everything({partial, _} = P) -> [P];
everything({_, {_, C}}) -> maps:keys(C);
everything({_, L, R}) -> everything(L) ++ everything(R).

cmp([], T2, _) -> everything(T2);
cmp(T1, [], _) -> everything(T1);
cmp({partial, _}, _, Loc) -> [{partial, Loc}];
cmp(_, {partial, _}, Loc) -> [{partial, Loc}];
cmp({H, _, _}, {H, _, _}, _) -> [];
cmp({_, L1, R1}, {_, L2, R2}, Loc) -> cmp(L1, L2, <<Loc/bits, 0:1>>) ++ cmp(R1, R2, <<Loc/bits, 1:1>>);
cmp({H, _}, {H, _}, _) -> [];
cmp({_, {_, C1}}, {_, {_, C2}}, _) ->
    [K || {K, V} <- maps:to_list(C1), maps:get(K, C2, {'$none'}) /= V] ++
        [K || K <- maps:keys(C2), not maps:is_key(K, C1)];
cmp(Leaf = {_, {<<KH:32>>, _}}, {_, L, R}, Loc) ->
    case (KH bsr (31 - bit_size(Loc))) band 1 of
        0 -> cmp(Leaf, L, <<Loc/bits, 0:1>>) ++ everything(R);
        1 -> everything(L) ++ cmp(Leaf, R, <<Loc/bits, 1:1>>)
    end;
cmp({_, L, R}, Leaf = {_, {<<KH:32>>, _}}, Loc) ->
    case (KH bsr (31 - bit_size(Loc))) band 1 of
        0 -> cmp(L, Leaf, <<Loc/bits, 0:1>>) ++ everything(R);
        1 -> everything(L) ++ cmp(R, Leaf, <<Loc/bits, 1:1>>)
    end.

continue(#{'__struct__' := 'Elixir.MerkleMap.MerkleTree.Diff', trees := Trees, keys := Keys}, Own) ->
    Found = lists:append([cmp(subtree(Own, Loc, 8), maps:get(tree, MT), Loc) || {Loc, MT} <- Trees]),
    Parts = [L || {partial, L} <- Found],
    New = [K || K <- Found, not (is_tuple(K) andalso tuple_size(K) =:= 2 andalso element(1, K) =:= partial)],
    case Parts of
        [] -> {ok, Keys ++ New};
        _ -> {continue, cont_t(Own, lists:usort(Parts), Keys ++ New)}
    end.
