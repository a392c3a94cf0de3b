# horde_standin.ex: a Horde.Registry stand-in written from ../shared/spec/horde-wire.md §1-§4 (no Horde code), so
# that interop/registry_suite.escript can check the C registry (horde_compat/registry.c) against a BEAM member
# without Horde. Its CRDT is interop/crdt_peer.erl (our own delta_crdt 0.6 peer, compiled onto the code path);
# everything on the wire is what Horde 0.10 would send.
#
#   HordeStandin.Registry.start_link(name: MyApp.Registry, members: :auto, sync_interval: 200)
#
# starts, as Horde.Registry does (§1.1), a one_for_all supervisor :"Elixir.MyApp.Registry.Supervisor" with
#   - the CRDT :"Elixir.MyApp.Registry.Crdt" (crdt_peer: sync timer, monitored neighbours, on_diffs to the
#     registry, MapSet shape of Elixir <= 1.14 unless mapset: :plain);
#   - the registry MyApp.Registry (HordeStandin.Registry.Impl, Horde.RegistryImpl's part: §4.2 conflicts,
#     §4.4 removals, member keys and neighbours, §1.3);
#   - with members: :auto, MyApp.Registry.NodeListener (nodeup/nodedown -> set_members [node() | Node.list()]).
# The API is Horde.Registry's: register/3, unregister/2, lookup/2 (§4.3, with the erpc Process.alive? check
# for pids of other nodes), count/1, members/1, set_members/2, and the via callbacks register_name/2,
# whereis_name/1, unregister_name/1, send/2. For the tests also: registrations/1 (the local table), stats/1
# (how many remote aliveness checks lookups made) and raw/2 (the CRDT's raw entries of a key).
#
# HordeStandin.serve/1 starts one from the command line and keeps the VM up:
#   elixir --name e@127.0.0.1 --cookie C -pa DIR_WITH_BEAMS -e 'HordeStandin.serve(name: MyApp.Registry)'
# and HordeStandin.Probe is a registered test process that reports what it receives (exits included).

defmodule HordeStandin.Registry do
  alias HordeStandin.Registry.Impl

  def child_spec(opts) do
    %{id: Keyword.fetch!(opts, :name), start: {__MODULE__, :start_link, [opts]}, type: :supervisor}
  end

  def start_link(opts) do
    name = Keyword.fetch!(opts, :name)
    members = Keyword.get(opts, :members, [])
    crdt_opts = %{
      sync_interval: Keyword.get(opts, :sync_interval, 300),
      on_diffs: {Impl, :on_diffs, [name]},
      monitor: true,
      mapset: Keyword.get(opts, :mapset, :v2)
    }

    children =
      [
        %{id: :crdt, start: {:crdt_peer, :start_link, [crdt_name(name), :random, crdt_opts]}},
        %{id: :impl, start: {Impl, :start_link, [[name: name, members: members]]}}
      ] ++
        if members == :auto,
          do: [%{id: :node_listener, start: {HordeStandin.Registry.NodeListener, :start_link, [name]}}],
          else: []

    Supervisor.start_link(children, strategy: :one_for_all, name: :"#{name}.Supervisor")
  end

  def crdt_name(name), do: :"#{name}.Crdt"

  # ---- Horde.Registry's API ---------------------------------------------------------------------------------

  def register(registry, key, value) when is_atom(registry) do
    case lookup(registry, key) do
      [] -> GenServer.call(registry, {:register, key, value, self()})
      [{pid, _value}] -> {:error, {:already_registered, pid}}
    end
  end

  def unregister(registry, key) when is_atom(registry) do
    GenServer.call(registry, {:unregister, key, self()})
  end

  # §4.3: found in the local table, its member is in the CRDT, and the process is alive.
  def lookup(registry, key) when is_atom(registry) do
    with [{^key, member, {pid, value}}] <- :ets.lookup(Impl.keys_table(registry), key),
         true <- :ets.member(Impl.members_table(registry), member),
         true <- alive?(registry, pid) do
      [{pid, value}]
    else
      _ -> []
    end
  end

  defp alive?(_registry, pid) when node(pid) == node(), do: Process.alive?(pid)

  defp alive?(registry, pid) do
    n = node(pid)

    if n in Node.list() do
      :ets.update_counter(Impl.stats_table(registry), :remote_alive_checks, 1)

      try do
        :erpc.call(n, Process, :alive?, [pid])
      catch
        :error, {:erpc, :noconnection} -> false
      end
    else
      false
    end
  end

  def count(registry), do: :ets.info(Impl.keys_table(registry), :size)
  def members(registry), do: GenServer.call(registry, :members)
  def set_members(registry, members), do: GenServer.call(registry, {:set_members, members})

  # ---- via ----------------------------------------------------------------------------------------------------

  def register_name({registry, key}, pid), do: register_name({registry, key, nil}, pid)

  def register_name({registry, key, value}, pid) do
    case GenServer.call(registry, {:register, key, value, pid}) do
      {:ok, _} -> :yes
      _ -> :no
    end
  end

  def whereis_name({registry, key}), do: whereis_name({registry, key, nil})

  def whereis_name({registry, key, _value}) do
    case lookup(registry, key) do
      [{pid, _}] -> pid
      [] -> :undefined
    end
  end

  def unregister_name({registry, key}), do: unregister(registry, key)
  def unregister_name({registry, key, _value}), do: unregister(registry, key)

  def send({registry, key}, msg), do: __MODULE__.send({registry, key, nil}, msg)

  def send({registry, key, _value} = name, msg) do
    case lookup(registry, key) do
      [{pid, _}] -> Kernel.send(pid, msg)
      [] -> :erlang.error(:badarg, [name, msg])
    end
  end

  # ---- for the tests ------------------------------------------------------------------------------------------

  def registrations(registry), do: Enum.sort(:ets.tab2list(Impl.keys_table(registry)))
  def stats(registry), do: Map.new(:ets.tab2list(Impl.stats_table(registry)))
  def raw(registry, crdt_key), do: :crdt_peer.call(crdt_name(registry), {:raw, crdt_key})

  # The pids of the supervisor's children (they change when the one_for_all supervisor restarted them).
  def processes(registry) do
    for {id, pid, _, _} <- Supervisor.which_children(:"#{registry}.Supervisor"), into: %{}, do: {id, pid}
  end
end

defmodule HordeStandin.Registry.Impl do
  @moduledoc false
  # Horde.RegistryImpl's part (§4): the local tables are named ETS tables (lookups read them in the caller),
  # filled from the CRDT's {crdt_update, Diffs}.
  use GenServer

  def start_link(opts), do: GenServer.start_link(__MODULE__, opts, name: Keyword.fetch!(opts, :name))

  # delta_crdt's on_diffs callback (runs in the CRDT process).
  def on_diffs(name, diffs) do
    try do
      Kernel.send(name, {:crdt_update, diffs})
    rescue
      ArgumentError -> :ok
    end
  end

  def keys_table(name), do: :"keys_#{name}"
  def pids_table(name), do: :"pids_#{name}"
  def members_table(name), do: :"members_#{name}"
  def registry_table(name), do: :"registry_#{name}"
  def stats_table(name), do: :"stats_#{name}"

  @impl true
  def init(opts) do
    Process.flag(:trap_exit, true)
    name = Keyword.fetch!(opts, :name)
    :ets.new(keys_table(name), [:named_table, :set, :protected, read_concurrency: true])
    :ets.new(pids_table(name), [:named_table, :set, :protected])
    :ets.new(members_table(name), [:named_table, :set, :protected, read_concurrency: true])
    :ets.new(registry_table(name), [:named_table, :set, :protected])
    :ets.new(stats_table(name), [:named_table, :set, :public])
    :ets.insert(stats_table(name), {:remote_alive_checks, 0})

    members =
      case Keyword.get(opts, :members, []) do
        :auto -> Enum.map([node() | Node.list()], &{name, &1})
        list -> list
      end

    state = %{name: name, members: MapSet.new()}
    {:ok, do_set_members(members, state)}
  end

  @impl true
  def handle_call({:register, key, value, pid}, _from, state) do
    Process.link(pid)
    crdt(state, {:put, {:key, key}, {self_member(state), pid, value}})
    add_pid_key(state, pid, key)
    {:reply, {:ok, self()}, state}
  end

  def handle_call({:unregister, key, pid}, _from, state) do
    case :ets.lookup(keys_table(state.name), key) do
      [{^key, _member, {^pid, _}}] ->
        remove_pid_key(state, pid, key)
        crdt(state, {:delete, {:key, key}})

      _ ->
        :ok
    end

    {:reply, :ok, state}
  end

  def handle_call(:members, _from, state), do: {:reply, MapSet.to_list(state.members), state}

  def handle_call({:set_members, members}, _from, state) do
    {:reply, :ok, do_set_members(members, state)}
  end

  @impl true
  def handle_info({:crdt_update, diffs}, state) do
    {:noreply, Enum.reduce(diffs, state, &process_diff/2)}
  end

  # A linked (registered) process died: its keys go (§4.4). A key it lost in a conflict was taken off its
  # list then, so the winner's registration stays.
  def handle_info({:EXIT, pid, _reason}, state) do
    case :ets.take(pids_table(state.name), pid) do
      [{^pid, keys}] ->
        for key <- keys, match?([{_, _, {^pid, _}}], :ets.lookup(keys_table(state.name), key)) do
          crdt(state, {:delete, {:key, key}})
        end

      [] ->
        :ok
    end

    {:noreply, state}
  end

  # ---- membership (§1.3) ----------------------------------------------------------------------------------------

  defp do_set_members(members, state) do
    new = MapSet.new([self_member(state) | Enum.map(members, &normalise/1)])

    for m <- MapSet.difference(state.members, new), do: crdt(state, {:delete, {:member, m}})
    for m <- MapSet.difference(new, state.members), do: crdt(state, {:put, {:member, m}, 1})

    %{state | members: new}
  end

  defp normalise({name, node} = m) when is_atom(name) and is_atom(node), do: m
  defp normalise(name) when is_atom(name), do: {name, node()}

  defp self_member(state), do: {state.name, node()}

  defp set_neighbours(state) do
    me = self_member(state)
    neighbours = for {n, nd} = m <- state.members, m != me, do: {:"#{n}.Crdt", nd}
    Kernel.send(HordeStandin.Registry.crdt_name(state.name), {:set_neighbours, neighbours})
  end

  # ---- diffs (§4.2, §4.4); no catch-all, as in Horde: an unexpected shape crashes the registry --------------------

  defp process_diff({:add, {:key, key}, {member, pid, value}}, state) do
    keys = keys_table(state.name)

    case :ets.lookup(keys, key) do
      [{^key, _, {^pid, _}}] ->
        :ok

      [{^key, _, {other, other_value}}] ->
        remove_pid_key(state, other, key)
        Process.exit(other, {:name_conflict, {key, other_value}, state.name, pid})

      [] ->
        :ok
    end

    :ets.insert(keys, {key, member, {pid, value}})
    state
  end

  defp process_diff({:remove, {:key, key}}, state) do
    case :ets.lookup(keys_table(state.name), key) do
      [{^key, _, {pid, _}}] ->
        remove_pid_key(state, pid, key)
        :ets.delete(keys_table(state.name), key)

      [] ->
        :ok
    end

    state
  end

  defp process_diff({:add, {:member, member}, 1}, state) do
    :ets.insert(members_table(state.name), {member, 1})
    state = %{state | members: MapSet.put(state.members, member)}
    set_neighbours(state)
    state
  end

  defp process_diff({:remove, {:member, member}}, state) do
    :ets.delete(members_table(state.name), member)

    for [key] <- :ets.match(keys_table(state.name), {:"$1", member, :_}) do
      crdt(state, {:delete, {:key, key}})
    end

    %{state | members: MapSet.delete(state.members, member)}
  end

  defp process_diff({:add, {:registry, key}, value}, state) do
    :ets.insert(registry_table(state.name), {key, value})
    state
  end

  defp process_diff({:remove, {:registry, key}}, state) do
    :ets.delete(registry_table(state.name), key)
    state
  end

  # ---- helpers ------------------------------------------------------------------------------------------------

  defp crdt(state, req) do
    :ok = :crdt_peer.call(HordeStandin.Registry.crdt_name(state.name), req)
  end

  defp add_pid_key(state, pid, key) do
    t = pids_table(state.name)
    keys = case :ets.lookup(t, pid), do: ([{_, ks}] -> ks; [] -> [])
    :ets.insert(t, {pid, Enum.uniq([key | keys])})
  end

  defp remove_pid_key(state, pid, key) do
    t = pids_table(state.name)

    case :ets.lookup(t, pid) do
      [{_, keys}] -> :ets.insert(t, {pid, List.delete(keys, key)})
      [] -> :ok
    end
  end
end

defmodule HordeStandin.Registry.NodeListener do
  @moduledoc false
  # members: :auto (§1.3): on every visible nodeup/nodedown, set_members with [node() | Node.list()].
  use GenServer

  def start_link(name) do
    GenServer.start_link(__MODULE__, name, name: Module.concat(name, NodeListener))
  end

  @impl true
  def init(name) do
    :net_kernel.monitor_nodes(true, node_type: :visible)
    {:ok, name}
  end

  @impl true
  def handle_info({event, _node, _info}, name) when event in [:nodeup, :nodedown] do
    :ok = HordeStandin.Registry.set_members(name, Enum.map([node() | Node.list()], &{name, &1}))
    {:noreply, name}
  end
end

defmodule HordeStandin.Probe do
  @moduledoc false
  # A test process (not linked to its starter) that registers itself, traps exits and forwards every message it
  # receives to `to` as {:probe, self(), msg}; {:probe_exit, reason} makes it exit with reason, and
  # {:probe_do, m, f, a} runs apply(m, f, a) in it (e.g. unregister) and reports {:done, result}.

  def start(registry, key, value, to) do
    parent = self()
    ref = make_ref()

    pid =
      spawn(fn ->
        Process.flag(:trap_exit, true)
        Kernel.send(parent, {ref, HordeStandin.Registry.register(registry, key, value)})
        loop(to)
      end)

    receive do
      {^ref, result} -> {pid, result}
    after
      10_000 -> {pid, :timeout}
    end
  end

  defp loop(to) do
    receive do
      {:probe_exit, reason} -> exit(reason)
      {:probe_do, m, f, a} -> Kernel.send(to, {:probe, self(), {:done, apply(m, f, a)}})
      msg -> Kernel.send(to, {:probe, self(), msg})
    end

    loop(to)
  end
end

defmodule HordeStandin do
  @moduledoc false
  # Starts a stand-in registry (options as HordeStandin.Registry.start_link/1; members: :auto by default),
  # prints STANDIN_READY and keeps the calling process (and so the VM) alive.
  def serve(opts) do
    opts = Keyword.put_new(opts, :members, :auto)
    {:ok, _} = HordeStandin.Registry.start_link(opts)
    IO.puts("STANDIN_READY #{node()}")
    Process.sleep(:infinity)
  end
end
