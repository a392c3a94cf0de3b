# Run by interop/proc_suite.escript as `elixir --name N@127.0.0.1 --cookie C interop/proc_calls.exs CNODE MODE`:
#   calls: GenServer.call to the C node's cnode_kv (many put/get), to a C server that exits mid-call, and
#          to one that never answers;
#   spawn: Node.spawn / Node.spawn_monitor of a fun (the C node cannot run it), :rpc.call of a function it lacks
#   (undef) and of the BIFs it answers (node/0, Process.alive?/1).
# Prints one `check=value` line per step (with ` (want ...)` when wrong), `TIME name=ms` lines, and exits 0
# only when every step gave the expected answer.
# (The receives live in a module: this Elixir, built with OTP 24, crashes OTP 25's beam_ssa_recv pass on
# top-level receives matching a pinned ref.)
defmodule ProcCalls do
  def await(ref, t) do
    receive do
      {^ref, r} -> r
    after
      t -> :no_answer
    end
  end

  def down(mref, pid, t) do
    receive do
      {:DOWN, ^mref, :process, ^pid, reason} -> reason
    after
      t -> :no_down
    end
  end
end

[cnode, mode] = System.argv()
node = String.to_atom(cnode)

ms = fn f ->
  t0 = System.monotonic_time(:millisecond)
  r = f.()
  {r, System.monotonic_time(:millisecond) - t0}
end

caught = fn f ->
  try do
    {:returned, f.()}
  catch
    kind, reason -> {kind, reason}
  end
end

checks =
  case mode do
    "calls" ->
      true = Node.connect(node)
      n = 5000

      {bad, t} =
        ms.(fn ->
          Enum.reduce(1..n, [], fn i, bad ->
            k = {:key, i, "k#{i}"}
            v = %{i: i, bin: <<i::32>>}
            r1 = GenServer.call({:cnode_kv, node}, {:put, k, v}, 5000)
            r2 = GenServer.call({:cnode_kv, node}, {:get, k}, 5000)
            if r1 == :ok and r2 == {:ok, v}, do: bad, else: [{i, r1, r2} | bad]
          end)
        end)

      IO.puts("TIME calls=#{t} (#{2 * n} GenServer.call, #{Float.round(2 * n / max(t, 1) * 1000, 0)}/s)")

      ref = make_ref()
      send({:cnode_ctl, node}, {self(), ref, {:start_kv, :kv_bye}})
      started = ProcCalls.await(ref, 5000)

      kv_pid = case started do
        {:ok, pid} -> pid
        _ -> nil
      end

      by_pid = kv_pid && caught.(fn -> GenServer.call(kv_pid, {:put, :a, 1}, 5000) end)
      {exit_r, exit_t} = ms.(fn -> caught.(fn -> GenServer.call({:kv_bye, node}, {:exit, :bye}, 5000) end) end)
      IO.puts("TIME exit_mid_call=#{exit_t}")
      {noreply_r, noreply_t} = ms.(fn -> caught.(fn -> GenServer.call({:cnode_kv, node}, :noreply, 300) end) end)
      IO.puts("TIME noreply_300=#{noreply_t}")

      [
        {"bad_replies", length(bad), 0, Enum.take(bad, 3)},
        {"missing_key", GenServer.call({:cnode_kv, node}, {:get, :no_such_key}, 5000), :error, nil},
        {"start_kv", match?({:ok, p} when is_pid(p) and node(p) == node, started), true, started},
        {"call_by_pid", by_pid, {:returned, :ok}, nil},
        {"exit_mid_call", match?({:exit, {:bye, {GenServer, :call, _}}}, exit_r), true, exit_r},
        {"exit_mid_call_prompt", exit_t < 2000, true, exit_t},
        {"after_exit_noproc", match?({:exit, {:noproc, {GenServer, :call, _}}},
                                     caught.(fn -> GenServer.call({:kv_bye, node}, {:get, :a}, 2000) end)), true,
         nil},
        {"noreply_timeout", match?({:exit, {:timeout, {GenServer, :call, _}}}, noreply_r), true, noreply_r},
        {"noreply_took", noreply_t >= 300 and noreply_t < 2000, true, noreply_t},
        {"after_timeout_call", GenServer.call({:cnode_kv, node}, {:get, {:key, 1, "k1"}}, 5000),
         {:ok, %{i: 1, bin: <<1::32>>}}, nil}
      ]

    "spawn" ->
      true = Node.connect(node)
      {pid, t1} = ms.(fn -> Node.spawn(node, fn -> :ok end) end)
      IO.puts("TIME node_spawn=#{t1}")
      mref = if is_pid(pid), do: Process.monitor(pid), else: nil

      down1 = if mref, do: ProcCalls.down(mref, pid, 5000), else: :no_monitor

      {{pid2, mref2}, t2} = ms.(fn -> Node.spawn_monitor(node, fn -> :ok end) end)
      IO.puts("TIME node_spawn_monitor=#{t2}")

      down2 = ProcCalls.down(mref2, pid2, 5000)

      {rpc, t3} = ms.(fn -> :rpc.call(node, :erlang, :system_info, [:otp_release], 5000) end)
      IO.puts("TIME rpc=#{t3}")

      [
        {"spawn_pid", is_pid(pid) and node(pid) == node, true, pid},
        {"spawn_prompt", t1 < 1000, true, t1},
        # The process may be gone before the monitor: noproc; otherwise its undef exit.
        {"spawn_down", match?({:undef, _}, down1) or down1 == :noproc, true, down1},
        {"spawn_monitor_pid", is_pid(pid2) and node(pid2) == node, true, pid2},
        {"spawn_monitor_down_undef", match?({:undef, _}, down2), true, down2},
        {"rpc_undef", match?({:badrpc, {:EXIT, {:undef, _}}}, rpc), true, rpc},
        {"rpc_prompt", t3 < 1000, true, t3},
        # Process.alive?/1 over erpc, as Horde.Registry.lookup asks: answered by the C node
        {"erpc_alive", :erpc.call(node, Process, :alive?, [pid2], 5000), false, pid2},
        {"rpc_node", :rpc.call(node, :erlang, :node, [], 5000), node, nil}
      ]
  end

failed =
  Enum.count(checks, fn {name, got, want, detail} ->
    IO.puts("#{name}=#{inspect(got)}#{if got == want, do: "", else: " (want #{inspect(want)}; #{inspect(detail)})"}")
    got != want
  end)

IO.puts("RESULT #{if failed == 0, do: "ok", else: "#{failed} failed"}")
System.halt(if failed == 0, do: 0, else: 1)
