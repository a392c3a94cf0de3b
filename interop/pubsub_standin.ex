# pubsub_standin.ex: a stand-in for Phoenix.PubSub 2.x with its default PG2 adapter, written from its documented
# behaviour and wire (docs/pubsub.md; no Phoenix code), so that interop/pubsub_suite.escript can check the C
# side (otp/pubsub.c) against Elixir nodes without Phoenix:
#
#   - the pg scope Phoenix.PubSub; per pubsub NAME a pool of shards, each a process registered under its group's
#     name and joined to that group: NAME.Adapter for shard 1, :"Elixir.NAME.Adapter_K" for shard K > 1;
#   - subscriptions in a duplicate-key Registry named NAME (topic => subscriber pid);
#   - broadcast: {:forward_to_local, Topic, Msg, Dispatcher} to each member of one shard's group on another node
#     (the shard picked by :erlang.phash2(self(), pool)), then the local dispatch; broadcast_from skips the
#     sender's own subscriptions on its node; direct_broadcast sends to {Shard, Node}; a shard receiving
#     forward_to_local dispatches locally with no sender.
#
# Started from the command line (the VM stays up):
#   elixir --name e@127.0.0.1 --cookie C -pa DIR -e 'PubSubStandin.serve(name: MyApp.PubSub, pool_size: 4)'
# (or serve([[name: A.PubSub], [name: B.PubSub, pool_size: 4]]) for several).
# PubSubStandin.Probe is a subscriber that keeps what it gets (start/2, received/1).

defmodule PubSubStandin do
  @scope Phoenix.PubSub
  @default Phoenix.PubSub

  # opts, or a list of opts: one pubsub each.
  def serve([o | _] = list) when is_list(o), do: serve_all(list)
  def serve(opts), do: serve_all([opts])

  defp serve_all(list) do
    Enum.each(list, fn opts -> :ok = start(opts) end)
    IO.puts("STANDIN_READY")
    Process.sleep(:infinity)
  end

  # Starts the pubsub, linked to the caller (serve/1's process keeps it alive).
  def start(opts) do
    name = Keyword.fetch!(opts, :name)
    pool = Keyword.get(opts, :pool_size, 1)

    case :pg.start(@scope) do
      {:ok, _} -> :ok
      {:error, {:already_started, _}} -> :ok
    end

    {:ok, _} = Registry.start_link(keys: :duplicate, name: name)
    adapter = Module.concat(name, "Adapter")
    shards = Enum.map(1..pool, fn 1 -> adapter; k -> :"#{adapter}_#{k}" end)
    :persistent_term.put({__MODULE__, name}, List.to_tuple(shards))
    Enum.each(shards, fn s -> {:ok, _} = GenServer.start_link(PubSubStandin.Shard, {name, s}, name: s) end)
    :ok
  end

  def subscribe(name, topic) when is_binary(topic) do
    {:ok, _} = Registry.register(name, topic, nil)
    :ok
  end

  def unsubscribe(name, topic), do: Registry.unregister(name, topic)

  def broadcast(name, topic, msg, dispatcher \\ @default),
    do: broadcast_from(name, :none, topic, msg, dispatcher)

  def broadcast_from(name, from, topic, msg, dispatcher \\ @default) do
    fwd = {:forward_to_local, topic, msg, dispatcher}

    for pid <- :pg.get_members(@scope, shard(name)), node(pid) != node() do
      send(pid, fwd)
    end

    deliver(name, from, topic, msg, dispatcher)
  end

  def local_broadcast(name, topic, msg, dispatcher \\ @default),
    do: deliver(name, :none, topic, msg, dispatcher)

  def direct_broadcast(node, name, topic, msg, dispatcher \\ @default) do
    send({shard(name), node}, {:forward_to_local, topic, msg, dispatcher})
    :ok
  end

  def shards(name), do: Tuple.to_list(:persistent_term.get({__MODULE__, name}))

  defp shard(name) do
    shards = :persistent_term.get({__MODULE__, name})
    elem(shards, :erlang.phash2(self(), tuple_size(shards)))
  end

  # The local dispatch: the default dispatcher sends the message to every subscription but the sender's; another
  # dispatcher module gets the entries, as Phoenix hands them to it.
  def deliver(name, from, topic, msg, dispatcher) do
    Registry.dispatch(name, topic, fn entries ->
      if dispatcher == @default do
        for {pid, _} <- entries, pid != from, do: send(pid, msg)
      else
        dispatcher.dispatch(entries, from, msg)
      end
    end)

    :ok
  end
end

defmodule PubSubStandin.Shard do
  use GenServer

  @impl true
  def init({name, group}) do
    :ok = :pg.join(Phoenix.PubSub, group, self())
    {:ok, name}
  end

  @impl true
  def handle_info({:forward_to_local, topic, msg, dispatcher}, name) do
    PubSubStandin.deliver(name, :none, topic, msg, dispatcher)
    {:noreply, name}
  end

  def handle_info(_, name), do: {:noreply, name}
end

# A dispatcher other than the default (as Phoenix channels' fastlane is one): it tags what it delivers, so a test
# can tell it ran on this node.
defmodule PubSubStandin.Tagging do
  def dispatch(entries, from, msg) do
    for {pid, _} <- entries, pid != from, do: send(pid, {:tagged, msg})
    :ok
  end
end

defmodule PubSubStandin.Probe do
  # A subscriber of topic that keeps every message; received/1 returns them in order.
  def start(name, topic) do
    parent = self()

    pid =
      spawn(fn ->
        :ok = PubSubStandin.subscribe(name, topic)
        send(parent, {:subscribed, self()})
        loop([])
      end)

    receive do
      {:subscribed, ^pid} -> pid
    after
      5000 -> raise "probe did not subscribe"
    end
  end

  def received(pid) do
    ref = make_ref()
    send(pid, {:"$probe_get", self(), ref})

    receive do
      {^ref, msgs} -> msgs
    after
      5000 -> :timeout
    end
  end

  defp loop(acc) do
    receive do
      {:"$probe_get", from, ref} ->
        send(from, {ref, Enum.reverse(acc)})
        loop(acc)

      msg ->
        loop([msg | acc])
    end
  end
end
