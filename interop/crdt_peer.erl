%% crdt_peer: a small BEAM-side delta_crdt 0.6 peer written from ../shared/spec/horde-wire.md §2-§3 (no Horde,
%% no delta_crdt code), for interop/crdt_suite.escript. One process registered as Name holds an AW-LWW map
%% (§2.2-§2.5) and a merkle_map tree rebuilt from it when it changed (§3.1-§3.4), and speaks the four sync
%% messages of §2.6 with the C CRDT process. It starts a sync round to each neighbour on every `sync` message
%% (the suite sends them; no timer) and counts what it saw so the suite can tell partial-diff rounds happened.
-module(crdt_peer).
-export([start/2, call/2, call/3]).
-export([loop/1, build/1, subtree/3, continue/2, read/1]).

start(Name, Id) ->
    P = spawn(fun() -> register(Name, self()), loop(new(Name, Id)) end),
    P.

call(Name, Req) -> call(Name, Req, 60000).
call(Name, Req, T) ->
    Ref = make_ref(),
    Name ! {call, self(), Ref, Req},
    receive {Ref, R} -> R after T -> exit({crdt_peer_timeout, Req}) end.

new(Name, Id) ->
    #{name => Name, id => Id, vv => #{}, values => #{}, tree => [], dirty => false, nbrs => [],
      stats => #{}}.

bump(K, S = #{stats := St}) -> S#{stats := maps:update_with(K, fun(V) -> V + 1 end, 1, St)}.

%% ---- the process --------------------------------------------------------------------------------------------

loop(S0) ->
    S = receive M -> handle(M, S0) end,
    ?MODULE:loop(S).

handle({call, From, Ref, Req}, S) ->
    {R, S1} = call_req(Req, S),
    From ! {Ref, R},
    S1;
handle(sync, S0) ->
    S = tree(S0),
    Cont0 = cont(S, [<<>>], []),
    [send(N, {diff, diff(Cont0, vv(S), self(), self(), N)}) || N <- maps:get(nbrs, S)],
    bump(syncs, S);
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
handle({diff, #{'__struct__' := 'Elixir.DeltaCrdt.AWLWWMap', dots := DVV, value := DV}, Keys}, S) ->
    bump(deltas_in, join(DVV, DV, Keys, S));
handle({ack_diff, _}, S) -> bump(acks_in, S);
handle(Other, S) -> exit({unexpected_message, Other, S}).

call_req({neighbours, Ns}, S) -> {ok, S#{nbrs := Ns}};
call_req({put, K, V}, S) -> {ok, add(K, V, S)};
call_req({delete, K}, S) -> {ok, remove(K, S)};
call_req(read, S) -> {read(maps:get(values, S)), S};
call_req(root, S0) -> S = tree(S0), {root(maps:get(tree, S)), S};
call_req(stats, S) -> {maps:get(stats, S), S}.

send(To, Msg) -> erlang:send(To, Msg), ok.

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
mapset(Dots) -> #{'__struct__' => 'Elixir.MapSet', map => maps:from_list([{D, []} || D <- Dots]), version => 2}.
dots(#{'__struct__' := 'Elixir.MapSet', map := M}) -> maps:keys(M).
covered({I, C}, VV) -> C =< maps:get(I, VV, 0).

add(K, V, S = #{id := Id, vv := VV, values := Vals}) ->
    C = maps:get(Id, VV, 0) + 1,
    Ts = erlang:monotonic_time(nanosecond),
    S#{vv := VV#{Id => C}, values := Vals#{K => #{{V, Ts} => mapset([{Id, C}])}}, dirty := true}.

remove(K, S = #{values := Vals}) -> S#{values := maps:remove(K, Vals), dirty := true}.

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
                                    case R of [] -> EA; _ -> EA#{EK => mapset(R)} end
                            end, #{}, maps:merge(E1, E2)),
                      case map_size(E) of 0 -> maps:remove(K, A); _ -> A#{K => E} end
              end, Vals, Keys),
    S#{vv := VV1, values := Vals1, dirty := Vals1 =/= Vals orelse maps:get(dirty, S)}.

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

tree(S = #{dirty := false}) -> S;
tree(S = #{values := Vals}) -> S#{tree := build(Vals), dirty := false}.

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
