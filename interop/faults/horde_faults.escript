#!/usr/bin/env escript
%%! -hidden -connect_all false
%% Horde under a partition (issue 24), on the fault harness: `sh interop/faults/run.sh BUILD horde_faults.escript`
%% (interop/faults/run.sh makes the namespaces; faults_lib.erl is the API). Four nodes, two on each side of the
%% partition {1, 2} | {3, 4}: the C nodes cnode_a (namespace 1) and cnode_b (3), the BEAM nodes e1 (2) and e2 (4).
%%   horde_registry_partition_heal: the C nodes run --horde-registry MyApp.Registry, e1 and e2 the Horde.Registry
%%     stand-in (interop/horde_standin.ex, members: auto, on erl with Elixir's code path; no Horde in CI). Names
%%     registered before the partition must all resolve after the heal (no live registration lost); names
%%     registered on both sides during it resolve to one holder on all four nodes, and the other gets the exit
%%     {name_conflict, {Key, Value}, Registry, Winner}; names registered on one side only resolve everywhere.
%%   horde_supervisor_partition_heal: the C nodes run --horde-supervisor MyApp.Sup (e1 and e2 are plain members of
%%     the cluster: there is no BEAM stand-in of Horde.DynamicSupervisor, and C children only go to C nodes);
%%     12 C children (CNode.Demo.Counter, each with its own argument) before the partition; each side adopts the
%%     other's children while apart (README: the orphan rule); after the heal every child runs exactly once.
%% Output: `ok name` / `FAIL name: reason`, `  # ...` lines with settle times, last `horde_faults: N passed, N failed`.
-mode(compile).
-export([main/1]).

-import(interop_lib, [cfg/1, info/2, step/1, fail/2, now_ms/0, ctl/3, wait_until/3]).
-import(faults_lib, [start_erl/3, start_cnode/3, partition/2, heal/2, rpc/4, ticktime/0]).

-define(REG, 'Elixir.MyApp.Registry').
-define(SUP, 'Elixir.MyApp.Sup').
-define(SI, 'Elixir.HordeStandin.Registry').
-define(PROBE, 'Elixir.HordeStandin.Probe').
-define(COUNTER, 'Elixir.CNode.Demo.Counter').
-define(T, 5000).
-define(SETTLE_MS, 20000).
-define(CHILDREN, 12).

tests() ->
    [{horde_registry_partition_heal, 55, fun t_registry/0},
     {horde_supervisor_partition_heal, 55, fun t_supervisor/0}].

main(Args) ->
    Tmp = arg_value("--tmp", Args),
    Here = filename:dirname(escript:script_name()),
    Libs = [filename:join([Here, "..", "interop_lib.erl"]), filename:join(Here, "faults_lib.erl"),
            filename:join([Here, "..", "crdt_peer.erl"])],
    [case Tmp =/= undefined andalso compile:file(L, [{outdir, Tmp}, return_errors]) of
         {ok, _} -> true = code:add_patha(Tmp);
         Err -> setup_failed("cannot compile ~ts into ~p: ~p", [L, Tmp, Err])
     end || L <- Libs],
    Ex = filename:join([Here, "..", "horde_standin.ex"]),
    Out = os:cmd(lists:flatten(io_lib:format("elixirc -pa '~ts' -o '~ts' '~ts' 2>&1; echo \"rc=$?\"",
                                             [Tmp, Tmp, Ex]))),
    lists:suffix("rc=0\n", Out) orelse setup_failed("elixirc ~ts failed: ~ts", [Ex, Out]),
    faults_lib:main(Args, "horde_faults", tests()).

setup_failed(F, A) ->
    io:format("FAIL setup: " ++ F ++ "~nhorde_faults: 0 passed, 1 failed~n", A),
    halt(1).

arg_value(_, []) -> undefined;
arg_value(K, [K, V | _]) -> V;
arg_value(K, [_ | T]) -> arg_value(K, T).

%% ---------------------------------------------------------------------------------------------------------
%% the cluster

c(CN, Req) ->
    case ctl(CN, Req, ?T) of
        {ok, R} -> R;
        timeout -> fail("cnode_ctl on ~ts did not answer ~0tp within ~b ms", [CN, Req, ?T])
    end.

elixir_ebin() ->
    case os:cmd("elixir -e 'IO.write(:code.lib_dir(:elixir))'") of
        "/" ++ _ = Dir -> filename:join(Dir, "ebin");
        Other -> fail("cannot find Elixir's code path: ~ts", [Other])
    end.

%% A BEAM node in namespace I; with Registry = true it runs the Horde.Registry stand-in (members: auto, sync
%% every 300 ms, Horde's default) on Elixir's code path.
beam(I, Short, Registry) ->
    Eval = case Registry of
               true -> "{ok, _} = application:ensure_all_started(elixir), "
                       "{ok, RegSup} = 'Elixir.HordeStandin.Registry':start_link([{name, 'Elixir.MyApp.Registry'}, "
                       "{members, auto}, {sync_interval, 300}]), unlink(RegSup), ";
               false -> ""
           end,
    {_, E} = start_erl(I, Short, #{args => ["-pa", elixir_ebin(), "-pa", cfg(tmp)], eval => Eval}),
    E.

%% Four nodes meshed: C nodes a (1) and b (3) with Extra, BEAM nodes e1 (2) and e2 (4).
cluster(Extra, Registry) ->
    {_, A, _} = start_cnode(1, "cnode_a", Extra),
    E1 = beam(2, "e1", Registry),
    {_, B, _} = start_cnode(3, "cnode_b", Extra),
    E2 = beam(4, "e2", Registry),
    T0 = now_ms(),
    mesh(#{a => A, b => B, e1 => E1, e2 => E2}),
    info("4 nodes meshed in ~b ms", [now_ms() - T0]),
    #{a => A, b => B, e1 => E1, e2 => E2}.

%% e1 connects to every other node; global meshes them; waits until each node sees the three others.
mesh(Ns = #{e1 := E1}) ->
    All = maps:values(Ns),
    [q(E1, net_kernel, connect_node, [N]) || N <- All, N =/= E1],
    wait_for("a full mesh", 10000, fun() -> lists:all(fun(N) -> length(visible(N, Ns)) =:= 3 end, All) end).

visible(N, #{a := A, b := B}) when N =:= A; N =:= B -> q(N, nodes) -- [node()];
visible(N, _) -> q(N, erlang, nodes, []).

%% Queries for the polled conditions: under load (2 vCPUs, net_ticktime 4 s) the driver's own connection to a node
%% may drop and come back, so a failed query is an answer ({error, Why}) that makes the condition false for now.
q(N, Req) ->
    case ctl(N, Req, ?T) of
        {ok, R} -> R;
        timeout -> {error, timeout}
    end.
q(N, M, F, A) ->
    try erpc:call(N, M, F, A, ?T) catch Class:Why -> {error, {Class, Why}} end.

wait_for(What, Ms, F) ->
    case wait_until(F, Ms, What) of
        true -> ok;
        false -> fail("~ts: not within ~b ms", [What, Ms])
    end.

%% Partitions {a, e1} | {b, e2} and waits until each node sees only its side's other node.
split(Ns = #{a := A, b := B, e1 := E1, e2 := E2}) ->
    T0 = now_ms(),
    partition([1, 2], [3, 4]),
    wait_for("the partition seen on all nodes", 4 * ticktime() * 1000,
             fun() -> lists:all(fun({N, Other}) -> visible(N, Ns) =:= [Other] end,
                                [{A, E1}, {E1, A}, {B, E2}, {E2, B}]) end),
    Ms = now_ms() - T0,
    info("partition {cnode_a, e1} | {cnode_b, e2} seen everywhere after ~b ms (net_ticktime ~b s)", [Ms, ticktime()]),
    Ms.

%% Heals and reconnects the sides (nothing reconnects on its own: members: auto dropped the other side).
rejoin(Ns) ->
    heal([1, 2], [3, 4]),
    T0 = now_ms(),
    mesh(Ns),
    now_ms() - T0.

%% ---------------------------------------------------------------------------------------------------------
%% Horde.Registry

lookup(N, Key, #{a := A, b := B}) when N =:= A; N =:= B -> q(N, {horde_lookup, ?REG, Key});
lookup(N, Key, _) -> q(N, ?SI, lookup, [?REG, Key]).

members(N, Ns) -> sorted(members_(N, Ns)).
members_(N, #{a := A, b := B}) when N =:= A; N =:= B -> q(N, {horde_members, ?REG});
members_(N, _) -> q(N, ?SI, members, [?REG]).

sorted(L) when is_list(L) -> lists:sort(L);
sorted(X) -> X.

members_are(Ns, Groups) ->
    lists:all(fun(G) -> Want = lists:sort([{?REG, X} || X <- G]),
                        lists:all(fun(N) -> members(N, Ns) =:= Want end, G) end, Groups).

%% Key registered on node N (value V): {Pid, Monitor}. A C holder is an echo process of cnode_ctl; a BEAM holder
%% is a HordeStandin.Probe, which traps exits and forwards them to this process.
register(N, Key, V, #{a := A, b := B}) when N =:= A; N =:= B ->
    case c(N, {horde_register, ?REG, Key, V}) of
        {ok, P} -> {P, monitor(process, P)};
        Other -> fail("horde_register ~0tp on ~ts: ~0tp", [Key, N, Other])
    end;
register(N, Key, V, _) ->
    case rpc(N, ?PROBE, start, [?REG, Key, V, self()]) of
        {P, {ok, _}} -> {P, monitor(process, P)};
        Other -> fail("register ~0tp on ~ts: ~0tp", [Key, N, Other])
    end.

%% How Key resolves on each node: [{Node, Answer}].
resolved(Key, Ns) -> [{N, lookup(N, Key, Ns)} || N <- maps:values(Ns)].

t_registry() ->
    Ns = #{a := A, b := B, e1 := E1, e2 := E2} = cluster(["--horde-registry", "MyApp.Registry"], true),
    All = maps:values(Ns),
    wait_for("4 registry members everywhere", 10000, fun() -> members_are(Ns, [All]) end),
    step("registrations before the partition, one per node"),
    Before = [{{before, Who}, N, register(N, {before, Who}, Who, Ns)} || {Who, N} <- maps:to_list(Ns)],
    wait_for("the early names on all nodes", 5000,
             fun() -> lists:all(fun({K, _, {P, _}}) -> resolved_to(K, P, All, Ns) end, Before) end),
    step("partition"),
    split(Ns),
    wait_for("2 members on each side", 10000, fun() -> members_are(Ns, [[A, E1], [B, E2]]) end),
    step("registrations on both sides"),
    %% the same key on both sides: C against C, C against BEAM, BEAM against C; and one key on one side only
    Clash = [{{clash, c_c}, A, B}, {{clash, c_e}, A, E2}, {{clash, e_c}, E1, B}],
    Held = [{K, [{X, register(X, K, atom_to_list(node_short(X)), Ns)} || X <- [N1, N2]]} || {K, N1, N2} <- Clash],
    Alone = [{{alone, W}, N, register(N, {alone, W}, W, Ns)} || {W, N} <- [{a, A}, {e2, E2}]],
    wait_for("each side's holders seen on their side", 5000,
             fun() -> lists:all(fun({K, Hs}) -> lists:all(fun({X, {P, _}}) -> lookup(X, K, Ns) =:= [{P, atom_to_list(node_short(X))}]
                                                          end, Hs) end, Held) end),
    step("heal"),
    T0 = now_ms(),
    Meshed = rejoin(Ns),
    wait_for("4 registry members everywhere after the heal", ?SETTLE_MS, fun() -> members_are(Ns, [All]) end),
    Members = now_ms() - T0,
    %% The C node's promise: every live name a C process holds resolves everywhere. A name a BEAM process holds is
    %% the stand-in's (Horde's) to keep or lose: Horde deletes a removed member's keys (horde-wire.md §4.4), and
    %% after a heal each side's removals reach the other; how many it lost is reported, not judged.
    Single = Before ++ Alone,
    CHeld = [R || R = {_, N, _} <- Single, N =:= A orelse N =:= B],
    Settled = fun() ->
                      lists:all(fun({K, _, {P, _}}) -> resolved_to(K, P, All, Ns) end, CHeld) andalso
                          lists:all(fun({K, Hs}) -> one_winner(K, [P || {_, {P, _}} <- Hs], All, Ns) orelse
                                                        beam_won_then_lost(K, Hs, All, Ns) end, Held)
              end,
    case wait_until(Settled, ?SETTLE_MS, "settled") of
        true -> ok;
        false ->
            Lost = [{K, resolved(K, Ns)} || {K, _, {P, _}} <- CHeld, not resolved_to(K, P, All, Ns)],
            Split = [{K, resolved(K, Ns)} || {K, Hs} <- Held, not one_winner(K, [P || {_, {P, _}} <- Hs], All, Ns),
                                             not beam_won_then_lost(K, Hs, All, Ns)],
            info("after the heal: ~ts", [beam_held(Single -- CHeld, All, Ns)]),
            fail("~b s after the heal: ~b of ~b live names held by C processes not found everywhere ~0tp; "
                 "~b of ~b clashes without one winner everywhere ~0tp",
                 [?SETTLE_MS div 1000, length(Lost), length(CHeld), Lost, length(Split), length(Held), Split])
    end,
    Settle = now_ms() - T0,
    step("the losers got name_conflict"),
    BeamLost = [K || {K, Hs} <- Held, not one_winner(K, [P || {_, {P, _}} <- Hs], All, Ns)],
    [loser_told(K, Hs, Ns) || {K, Hs} <- Held, not lists:member(K, BeamLost)],
    info("registry: meshed ~b ms after the heal, members agreed after ~b ms, every C-held name and clash settled "
         "after ~b ms (~b early names, ~b clashes, ~b one-sided names); ~ts; clashes a BEAM holder won and the "
         "stand-ins then removed (the C holder told name_conflict): ~0tp",
         [Meshed, Members, Settle, length(Before), length(Held), length(Alone), beam_held(Single -- CHeld, All, Ns),
          BeamLost]),
    ok.

beam_held(Rs, All, Ns) ->
    Kept = [K || {K, _, {P, _}} <- Rs, resolved_to(K, P, All, Ns)],
    io_lib:format("BEAM-held names kept by the stand-ins (Horde's rules): ~b of ~b", [length(Kept), length(Rs)]).

node_short(N) -> list_to_atom(hd(string:split(atom_to_list(N), "@"))).

%% Key resolves to holder P on every node (the value is the holder's registration's: not checked here).
resolved_to(K, P, All, Ns) ->
    lists:all(fun(N) -> case lookup(N, K, Ns) of [{P, _}] -> true; _ -> false end end, All).

%% Key resolves to the same one of Pids on every node.
one_winner(K, Pids, All, Ns) ->
    case lists:usort([lookup(N, K, Ns) || N <- All]) of
        [[{W, _}]] -> lists:member(W, Pids);
        _ -> false
    end.

%% A clash between a C and a BEAM holder that the BEAM holder won, whose name then went by the stand-ins' own rule
%% (Horde's, horde-wire.md section 4.4: a member a node's NodeListener removes while the nodes re-meet has its keys
%% deleted, and nothing re-adds a BEAM process's key): no node resolves K, and the C holder ended with name_conflict
%% naming the BEAM holder (its DOWN is in the mailbox, looked at, not taken). Reported, not judged, as BEAM-held names
%% are; a C holder that won must resolve everywhere (the C registry re-adds a live process's key a peer removed).
beam_won_then_lost(K, Hs, All, Ns) ->
    #{a := A, b := B} = Ns,
    case {[H || H = {X, _} <- Hs, X =:= A orelse X =:= B], [P || {X, {P, _}} <- Hs, X =/= A, X =/= B]} of
        {[{_, {CP, Ref}}], [BP]} ->
            {messages, Ms} = process_info(self(), messages),
            lists:member({'DOWN', Ref, process, CP, conflict}, [down_kind(M, K, BP) || M <- Ms]) andalso
                lists:all(fun(N) -> lookup(N, K, Ns) =:= [] end, All);
        _ -> false
    end.

down_kind({'DOWN', Ref, process, P, {name_conflict, {K, _}, ?REG, W}}, K, W) -> {'DOWN', Ref, process, P, conflict};
down_kind(M, _, _) -> M.

%% The holder that lost Key got {name_conflict, {Key, Value}, Registry, Winner}: a C echo process dies of it, a
%% BEAM probe (trapping exits) forwards it.
loser_told(K, Hs, Ns) ->
    [{W, _}] = lookup(maps:get(a, Ns), K, Ns),
    [{LN, {L, Ref}}] = [H || H = {_, {P, _}} <- Hs, P =/= W],
    Why = receive
              {'DOWN', Ref, process, L, R} -> R;
              {probe, L, {'EXIT', _, R}} -> R
          after ?T -> fail("~0tp: the loser ~p on ~ts got no exit signal (the winner is ~p)", [K, L, LN, W])
          end,
    case Why of
        {name_conflict, {K, _}, ?REG, W} -> ok;
        _ -> fail("~0tp: the loser ~p on ~ts ended with ~0tp, want {name_conflict, {~0tp, _}, ~p, ~p}",
                  [K, L, LN, Why, K, ?REG, W])
    end.

%% ---------------------------------------------------------------------------------------------------------
%% Horde.DynamicSupervisor

%% Every C child running on the C nodes: [{Arg, Pid}] (Arg: what the child's `get` answers).
children(#{a := A, b := B}) ->
    [{child_arg(P), P} || N <- [A, B], {_, P, _, _} <- listed(q(N, {horde_sup_which_children, ?SUP})), is_pid(P)].

listed(L) when is_list(L) -> L;
listed(_) -> [].

child_arg(P) ->
    try gen_server:call(P, get, ?T) catch _:_ -> gone end.

%% Each of 1..?CHILDREN runs exactly once; else the multiset of what runs.
once(Ns) ->
    Args = lists:sort([X || {X, _} <- children(Ns)]),
    Args =:= lists:seq(1, ?CHILDREN) orelse Args.

t_supervisor() ->
    Ns = #{a := A, b := B} = cluster(["--horde-supervisor", "MyApp.Sup"], false),
    step("children"),
    [case c(A, {horde_sup_start_child, ?SUP, #{id => I, start => {?COUNTER, start_link, [I]}, cnode => true}}) of
         {ok, P} when is_pid(P) -> ok;
         Other -> fail("start_child ~b: ~0tp", [I, Other])
     end || I <- lists:seq(1, ?CHILDREN)],
    wait_for("every child once", 5000, fun() -> once(Ns) =:= true end),
    OnA = length(c(A, {horde_sup_which_children, ?SUP})),
    info("~b children: ~b on cnode_a, ~b on cnode_b", [?CHILDREN, OnA, ?CHILDREN - OnA]),
    step("partition"),
    split(Ns),
    T1 = now_ms(),
    Counts = fun() -> {length(listed(q(A, {horde_sup_which_children, ?SUP}))),
                       length(listed(q(B, {horde_sup_which_children, ?SUP})))} end,
    Adopted = case wait_until(fun() -> Counts() =:= {?CHILDREN, ?CHILDREN} end, 5000, "both sides run every child") of
                  true -> io_lib:format("each side ran all ~b children ~b ms after the partition was seen",
                                        [?CHILDREN, now_ms() - T1]);
                  false -> io_lib:format("5 s into the partition cnode_a ran ~b and cnode_b ~b children",
                                         tuple_to_list(Counts()))
              end,
    info("~ts", [Adopted]),
    step("heal"),
    T0 = now_ms(),
    Meshed = rejoin(Ns),
    case wait_until(fun() -> once(Ns) =:= true end, ?SETTLE_MS, "every child once") of
        true -> ok;
        false -> fail("~b s after the heal the children are not each running once: ~0tp (cnode_a ~b, cnode_b ~b)",
                      [?SETTLE_MS div 1000, once(Ns) | tuple_to_list(Counts())])
    end,
    Settle = now_ms() - T0,
    info("supervisor: after the heal meshed in ~b ms, every child once after ~b ms", [Meshed, Settle]),
    ok.
