#!/usr/bin/env escript
%% The BEAM side of bench/phash2.sh. `gen N FILE`: writes N terms of the shapes Horde and merkle_map hash
%% (registry keys, name tuples, MapSet-style maps, binaries, strings, numbers) as hex lines. `run FILE SECS`:
%% hashes them with erlang:phash2/2 for SECS seconds; prints `terms_per_s checksum`.
-mode(compile).

main(["gen", N, File]) ->
    rand:seed(exsss, 4242),
    Terms = [term(I) || I <- lists:seq(1, list_to_integer(N))],
    ok = file:write_file(File, [[binary:encode_hex(term_to_binary(T)), $\n] || T <- Terms]);
main(["run", File, Secs]) ->
    {ok, B} = file:read_file(File),
    Terms = [binary_to_term(binary:decode_hex(L)) || L <- binary:split(B, <<"\n">>, [global, trim_all])],
    Sum = lists:sum([erlang:phash2(T, 1 bsl 32) || T <- Terms]),
    Ms = round(list_to_float(Secs) * 1000),
    T0 = erlang:monotonic_time(microsecond),
    {Done, X} = loop(Terms, T0 + Ms * 1000, 0, length(Terms), 0),
    T1 = erlang:monotonic_time(microsecond),
    %% X (the hashes folded together) is printed to stderr so that no call can be optimised away.
    io:format(standard_error, "beam fold ~b~n", [X]),
    io:format("~b ~b~n", [round(Done / ((T1 - T0) / 1.0e6)), Sum]).

loop(Terms, Until, Done, N, X) ->
    X1 = hash_all(Terms, X),
    case erlang:monotonic_time(microsecond) >= Until of
        true -> {Done + N, X1};
        false -> loop(Terms, Until, Done + N, N, X1)
    end.

hash_all([T | Ts], X) -> hash_all(Ts, X bxor erlang:phash2(T, 1 bsl 32));
hash_all([], X) -> X.

term(I) ->
    Node = list_to_atom("node" ++ integer_to_list(I rem 7) ++ "@127.0.0.1"),
    case I rem 8 of
        0 -> {member, {'MyApp.Registry', Node}};
        1 -> {key, {user, I}, {self(), rand:uniform(1 bsl 40)}};
        2 -> #{'__struct__' => 'Elixir.MapSet', map => #{{rand:uniform(1 bsl 32), 1} => [], {I, 2} => []}, version => 2};
        3 -> rand:bytes(32);
        4 -> "session:" ++ integer_to_list(I);
        5 -> {{dsup, Node}, I};
        6 -> rand:uniform(1 bsl 70) - (1 bsl 69);
        7 -> [{I, float(I)}, <<"value">>, maps:from_list([{K, K * I} || K <- lists:seq(1, 5)])]
    end.
