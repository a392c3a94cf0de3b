# Run by interop/suite.escript as `elixir --name e@127.0.0.1 --cookie C interop/kv_check.exs CNODE`:
# pings the C node from Elixir and drives its cnode_kv gen_server; prints one `check=value` line per step
# and exits 0 only when every step gave the expected answer.
[cnode] = System.argv()
node = String.to_atom(cnode)

call = fn req ->
  try do
    GenServer.call({:cnode_kv, node}, req, 5000)
  catch
    kind, reason -> {:caught, kind, reason}
  end
end

checks = [
  {"ping", fn -> Node.ping(node) end, :pong},
  {"visible", fn -> node in Node.list() end, true},
  {"put", fn -> call.({:put, 1, 2}) end, :ok},
  {"get1", fn -> call.({:get, 1}) end, {:ok, 2}},
  {"get9", fn -> call.({:get, 9}) end, :error}
]

failed =
  Enum.count(checks, fn {name, f, want} ->
    got = f.()
    IO.puts("#{name}=#{inspect(got)}#{if got == want, do: "", else: " (want #{inspect(want)})"}")
    got != want
  end)

System.halt(if failed == 0, do: 0, else: 1)
