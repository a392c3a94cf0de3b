%% faults_lib: the driver's side of the network-fault harness (issue 24), on top of interop/interop_lib.erl.
%% interop/faults/run.sh makes the namespaces (see its header) and runs an escript in the hub namespace; the
%% escript compiles interop_lib.erl and this file into --tmp, adds it to the code path and calls
%%
%%     faults_lib:main(Args, SuiteName, Tests)      % Tests as interop_lib's: {Name, TimeoutS, Fun}
%%
%% which starts this node as f@10.77.0.1 (hidden, net_ticktime ticktime()), runs each test with the network
%% reset before it (reset_net/0), prints `ok Name` / `FAIL Name: reason` and `  # Name took S s`, and last
%% `SuiteName: N passed, N failed`. Node namespaces are numbered 1..node_count(); what a test starts is killed
%% after it (interop_lib's scopes); run.sh kills anything left and deletes the namespaces. node_count() is
%% the number of node namespaces.
%%
%% Nodes (I: a namespace number):
%%   start_erl(I, Short, Opts) -> {Handle, Node}   erl -name Short@10.77.0.1I -kernel net_ticktime T; it prints
%%       `FAULTS nodeup N` / `FAULTS nodedown N Reason` for visible nodes (wait_line on Handle). Opts as
%%       interop_lib:start_erl/2's, plus ticktime.
%%   start_cnode(I, Short, Extra) -> {Handle, Node, Creation}   build/cnode --name Short@10.77.0.1I --ticktime T
%%       --verbose Extra; it logs `nodeup N` / `nodedown N: reason`.
%%   addr(I), ns(I), node_name(Short, I), ticktime() (4 s unless FAULTS_TICKTIME says otherwise)
%%   stall(Handle) / resume(Handle): SIGSTOP / SIGCONT;  proc_stats(Handle) -> #{rss_kb, fds}
%% Faults (nft table `inet faults` in each node namespace; all undone by reset_net/0):
%%   partition(SideA, SideB): every packet between the two lists of namespaces dropped, both ways;
%%   partition(I, J, oneway): I's packets to J dropped (J's to I still pass);  heal(SideA, SideB), heal_all()
%%   cut(I, J): each side answers the other's TCP packets with a reset (nft reject), so a connection between I
%%       and J dies at the next packet either side sends; uncut(I, J)
%%   impair(I, #{delay_ms, jitter_ms, loss_pct, fifo, rate_mbit}): delay +- jitter on I's outgoing eth0 packets
%%       (the NFQUEUE delayer, faults_delay.c), loss_pct % of I's eth0 packets dropped in each direction (nft
%%       numgen), I's outgoing eth0 traffic held to rate_mbit (tc tbf); clear_impair(I)
%%   bytes(I, from | to, J): bytes I received from / sent to J so far (nft counters)
%% Timing: time_line(Handle, Match, Since, T0, TimeoutMs) -> ms from T0 (a now_ms()) to the line;
%%   time_lines([{Handle, Match, Since}], T0, TimeoutMs) -> [Ms]: the same for several lines awaited at once.
-module(faults_lib).

-export([main/3, main/4]).
-export([addr/1, ns/1, node_name/2, ticktime/0, node_count/0]).
-export([start_erl/3, start_cnode/3, stall/1, resume/1, proc_stats/1, ospid/1]).
-export([partition/2, partition/3, heal/2, heal_all/0, cut/2, uncut/2, impair/2, clear_impair/1, reset_net/0,
         bytes/3]).
-export([time_line/5, time_lines/3, rpc/4, in_ns/3]).

-import(interop_lib, [cfg/1, fail/2, flat/2, info/2, now_ms/0, step/1]).

-define(TAB, faults).

main(Args, SuiteName, Tests) -> main(Args, SuiteName, Tests, #{}).

main(Args, SuiteName, Tests, Opts) ->
    Subnet = arg("--subnet", Args, "10.77.0"),
    ets:new(?TAB, [named_table, public, set]),
    ets:insert(?TAB, {env, #{subnet => Subnet, nodes => list_to_integer(arg("--nodes", Args, "5")),
                             prefix => arg("--prefix", Args, "flt"), delayer => arg("--delayer", Args, "")}}),
    ok = application:set_env(kernel, net_ticktime, ticktime()),  % read when interop_lib starts distribution
    Wrapped = [wrap_test(T) || T <- Tests],
    interop_lib:main(Args, SuiteName, Wrapped,
                     maps:merge(#{node => list_to_atom("f@" ++ Subnet ++ ".1"), budget_ms => 290000,
                                  fail_logs => ["cnode", "erl", "delay"]}, Opts)).

wrap_test({Name, Timeout, Fun}) -> wrap_test({Name, Timeout, Fun, #{}});
wrap_test({Name, Timeout, Fun, TOpts}) ->
    {Name, Timeout, fun() -> reset_net(), try Fun() after reset_net() end end, TOpts#{shared_cnode => false}}.

arg(_, [], Default) -> Default;
arg(K, [K, V | _], _) -> V;
arg(K, [_ | T], Default) -> arg(K, T, Default).

env(K) -> maps:get(K, ets:lookup_element(?TAB, env, 2)).

%% ---------------------------------------------------------------------------------------------------------
%% where things run

node_count() -> env(nodes).
ns(I) -> env(prefix) ++ integer_to_list(I).
addr(I) -> env(subnet) ++ ".1" ++ integer_to_list(I).
node_name(Short, I) -> Short ++ "@" ++ addr(I).

ticktime() ->
    case os:getenv("FAULTS_TICKTIME") of
        false -> 4;
        T -> list_to_integer(T)
    end.

ip() -> os:find_executable("ip").
wrap(I) -> [ip(), "netns", "exec", ns(I)].

%% Runs Exe Args in namespace I; {ExitStatus, Output}.
in_ns(I, Exe, Args) ->
    Port = open_port({spawn_executable, ip()},
                     [{args, ["netns", "exec", ns(I), Exe | Args]}, exit_status, stderr_to_stdout, binary, hide]),
    collect(Port, []).

collect(Port, Acc) ->
    receive
        {Port, {data, D}} -> collect(Port, [D | Acc]);
        {Port, {exit_status, S}} -> {S, binary_to_list(iolist_to_binary(lists:reverse(Acc)))}
    after 15000 -> fail("a command in a namespace did not finish within 15 s", [])
    end.

must(I, Exe, Args) ->
    case in_ns(I, Exe, Args) of
        {0, Out} -> Out;
        {S, Out} -> fail("in ~ts: ~ts ~ts: exit ~b: ~ts", [ns(I), Exe, lists:join(" ", Args), S, Out])
    end.

nft(I, Text) -> must(I, "nft", [Text]).

%% ---------------------------------------------------------------------------------------------------------
%% nodes

start_erl(I, Short, Opts) ->
    T = integer_to_list(maps:get(ticktime, Opts, ticktime())),
    Watch = "spawn(fun() -> net_kernel:monitor_nodes(true, [nodedown_reason]), (fun L() -> receive "
            "{nodeup, N, _} -> io:format(\"FAULTS nodeup ~s~n\", [N]), L(); "
            "{nodedown, N, Info} -> io:format(\"FAULTS nodedown ~s ~p~n\", "
            "[N, proplists:get_value(nodedown_reason, Info)]), L() end end)() end), ",
    interop_lib:start_erl(Short, Opts#{host => addr(I), wrap => wrap(I),
                                       args => ["-kernel", "net_ticktime", T | maps:get(args, Opts, [])],
                                       eval => Watch ++ maps:get(eval, Opts, "")}).

start_cnode(I, Short, Extra) ->
    Name = node_name(Short, I),
    {H, Cr} = interop_lib:start_cnode("cnode_" ++ Short, Name,
                                      ["--ticktime", integer_to_list(ticktime()), "--verbose" | Extra],
                                      #{wrap => wrap(I)}),
    {H, list_to_atom(Name), Cr}.

ospid(#{ospid := P}) -> P.
stall(H) -> interop_lib:signal(H, "STOP"), ok.
resume(H) -> interop_lib:signal(H, "CONT"), ok.

%% The process's resident set (kB, VmRSS) and open file descriptors.
proc_stats(#{ospid := P}) ->
    {ok, St} = file:read_file(flat("/proc/~b/status", [P])),
    {match, [Rss]} = re:run(St, "VmRSS:\\s+(\\d+) kB", [{capture, all_but_first, list}]),
    {ok, Fds} = file:list_dir(flat("/proc/~b/fd", [P])),
    #{rss_kb => list_to_integer(Rss), fds => length(Fds)}.

rpc(Node, M, F, A) -> erpc:call(Node, M, F, A, 10000).

%% Waits for a line of H matching Match after line Since; the milliseconds from T0 (a now_ms()) to it.
time_line(H, Match, Since, T0, Timeout) ->
    case interop_lib:wait_line(H, Match, Since, Timeout) of
        {ok, _} -> now_ms() - T0;
        R -> fail("~ts: no line ~p within ~b ms (~p)", [maps:get(name, H), Match, Timeout, R])
    end.

%% Each line is awaited by its own process, so each time is the line's own arrival.
time_lines(Waits, T0, Timeout) ->
    Self = self(),
    Ps = [spawn_link(fun() -> Self ! {self(), catch time_line(H, M, S, T0, Timeout)} end) || {H, M, S} <- Waits],
    [receive {P, {'EXIT', {fail, Why}}} -> exit({fail, Why}); {P, Ms} -> Ms end || P <- Ps].

%% ---------------------------------------------------------------------------------------------------------
%% faults

side(I) when is_integer(I) -> [I];
side(L) -> L.

partition(A, B) ->
    [begin set_add(I, "drop_in", J), set_add(I, "drop_out", J) end || I <- side(A), J <- side(B)],
    ok.

partition(I, J, oneway) -> set_add(I, "drop_out", J), ok.

heal(A, B) ->
    [begin set_del(I, S, J), set_del(J, S, I) end || I <- side(A), J <- side(B), S <- ["drop_in", "drop_out"]],
    ok.

heal_all() ->
    [nft(I, flat("flush set inet faults ~ts", [S])) || I <- lists:seq(1, node_count()), S <- ["drop_in", "drop_out"]],
    ok.

cut(I, J) -> set_add(I, "reset_in", J), set_add(J, "reset_in", I), ok.
uncut(I, J) -> set_del(I, "reset_in", J), set_del(J, "reset_in", I), ok.

set_add(I, Set, J) -> nft(I, flat("add element inet faults ~ts { ~ts }", [Set, addr(J)])).
set_del(I, Set, J) -> in_ns(I, "nft", [flat("delete element inet faults ~ts { ~ts }", [Set, addr(J)])]).

impair(I, Opts) ->
    case maps:get(loss_pct, Opts, 0) of
        0 -> ok;
        Pct ->
            PerMille = round(Pct * 10),
            [nft(I, flat("add rule inet faults ~ts numgen random mod 1000 < ~b drop", [C, PerMille]))
             || C <- ["loss_in", "loss_out"]]
    end,
    case maps:get(rate_mbit, Opts, 0) of
        0 -> ok;
        Mbit ->
            must(I, "tc", ["qdisc", "add", "dev", "eth0", "root", "tbf", "rate", flat("~bmbit", [Mbit]), "burst", "256kb",
                           "latency", "200ms"]),
            ets:insert(?TAB, {{tbf, I}, true})
    end,
    case maps:get(delay_ms, Opts, 0) of
        0 -> ok;
        D ->
            Args = ["--queue", "0", "--delay", integer_to_list(D), "--jitter",
                    integer_to_list(maps:get(jitter_ms, Opts, 0))] ++
                [A || A <- ["--fifo"], maps:get(fifo, Opts, false)],
            H = interop_lib:start_ext("delay_" ++ integer_to_list(I), ip(),
                                      ["netns", "exec", ns(I), env(delayer) | Args], []),
            case interop_lib:wait_line(H, "ready", 0, 5000) of
                {ok, _} -> ok;
                R -> fail("the delayer in ~ts did not start (~p): ~ts", [ns(I), R, interop_lib:tail(H, 3)])
            end,
            ets:insert(?TAB, {{delayer, I}, H}),
            must(I, "iptables-nft", ["-A", "OUTPUT", "-o", "eth0", "-j", "NFQUEUE", "--queue-num", "0"])
    end,
    ok.

clear_impair(I) ->
    [nft(I, flat("flush chain inet faults ~ts", [C])) || C <- ["loss_in", "loss_out"]],
    [must(I, "tc", ["qdisc", "del", "dev", "eth0", "root"]) || _ <- ets:take(?TAB, {tbf, I})],
    case ets:take(?TAB, {delayer, I}) of
        [{_, H}] ->
            must(I, "iptables-nft", ["-F", "OUTPUT"]),
            interop_lib:signal(H, "TERM"),
            case interop_lib:wait_exit(H, 5000) of
                {ok, _} -> info("~ts", [lists:last(interop_lib:lines_since(H, 0) -- ["=== exit status 0"])]);
                timeout -> fail("the delayer in ~ts did not stop", [ns(I)])
            end;
        [] -> ok
    end,
    ok.

%% Every namespace back to a clean network: no partition, cut, loss or delay.
reset_net() ->
    heal_all(),
    [begin clear_impair(I), nft(I, "flush set inet faults reset_in") end
     || I <- lists:seq(1, node_count())],
    ok.

bytes(I, Dir, J) ->
    Out = nft(I, flat("list counter inet faults ~ts_~b", [Dir, J])),
    {match, [B]} = re:run(Out, "bytes (\\d+)", [{capture, all_but_first, list}]),
    list_to_integer(B).
