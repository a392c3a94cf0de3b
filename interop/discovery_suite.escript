#!/usr/bin/env escript
%%! -noinput
%% Discovery (issue 20): runs interop/discovery.sh, which builds network namespaces on a bridge and starts C nodes,
%% Elixir nodes running interop/gossip_standin.ex and a dnsmasq in them (see its header), and passes its lines
%% through. Run by interop/run.sh with --cnode BIN --tmp DIR --pidfile F (other arguments ignored). Output: `ok
%% name` / `FAIL name: reason`, then `discovery_suite: N passed, N failed` (the script's own).
-mode(compile).

main(Args) ->
    Cnode = arg("--cnode", Args),
    Tmp = arg("--tmp", Args),
    Pidfile = arg("--pidfile", Args),
    Script = filename:join(filename:dirname(escript:script_name()), "discovery.sh"),
    Port = open_port({spawn_executable, "/bin/sh"},
                     [{args, [Script, Cnode, Tmp, Pidfile]}, exit_status, stderr_to_stdout, binary, {line, 4096}]),
    halt(relay(Port)).

relay(Port) ->
    receive
        {Port, {data, {_, Line}}} -> io:put_chars([Line, $\n]), relay(Port);
        {Port, {exit_status, St}} -> St
    end.

arg(Name, [Name, V | _]) -> V;
arg(Name, [_ | T]) -> arg(Name, T);
arg(Name, []) -> io:format("discovery_suite: missing ~s~ndiscovery_suite: 0 passed, 1 failed~n", [Name]), halt(1).
