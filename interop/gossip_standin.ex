# gossip_standin.ex: an Elixir node doing what libcluster's Cluster.Strategy.Gossip does on the wire, written for
# the discovery interop test from its documented format (no libcluster code): a UDP socket on port 45892 joined
# to 233.252.1.32 (reuseaddr, reuseport, broadcast, multicast TTL 1 and loop), a heartbeat every 1..5000 ms,
# "heartbeat::" <> :erlang.term_to_binary(%{node: node()}), and with a secret the IV (16 random bytes) followed by
# AES-256-CBC (key: SHA-256 of the secret) of the PKCS #7-padded heartbeat. Every heartbeat heard from another
# node is connected to, as libcluster connects.
#
# Run: elixir --name e@IP --cookie C gossip_standin.ex; settings from the environment:
#   GOSSIP_MODE   both (default) | send (heartbeats only, never connects) | listen (connects, never sends)
#   GOSSIP_SECRET the secret (unset: clear heartbeats)
#   GOSSIP_PORT, GOSSIP_ADDR, GOSSIP_IF (multicast_if), GOSSIP_TTL
# It prints "heard NODE", "connected NODE", "ignored N bytes" and "nodeup NODE" lines (flushed) and runs until
# killed.
defmodule GossipStandin do
  use GenServer

  def start_link(opts), do: GenServer.start_link(__MODULE__, opts)

  @impl true
  def init(opts) do
    addr = parse_ip(opts[:addr])
    ifaddr = opts[:if] && parse_ip(opts[:if])

    udp_opts =
      [
        :binary,
        active: true,
        ip: {0, 0, 0, 0},
        reuseaddr: true,
        broadcast: true,
        multicast_ttl: opts[:ttl],
        multicast_loop: true,
        add_membership: {addr, ifaddr || {0, 0, 0, 0}},
        # SO_REUSEPORT (Linux: level 1, option 15)
        raw: {1, 15, <<1::native-32>>}
      ] ++ if(ifaddr, do: [multicast_if: ifaddr], else: [])

    {:ok, sock} = :gen_udp.open(opts[:port], udp_opts)
    :ok = :net_kernel.monitor_nodes(true)
    if opts[:mode] != "listen", do: send(self(), :heartbeat)
    {:ok, %{sock: sock, addr: addr, port: opts[:port], secret: opts[:secret], mode: opts[:mode]}}
  end

  @impl true
  def handle_info(:heartbeat, s) do
    :gen_udp.send(s.sock, s.addr, s.port, packet(s.secret))
    Process.send_after(self(), :heartbeat, :rand.uniform(5_000))
    {:noreply, s}
  end

  def handle_info({:udp, _sock, _ip, _port, data}, s) do
    case read(data, s.secret) do
      {:ok, n} when n != node() ->
        say("heard #{n}")
        if s.mode != "send" and n not in Node.list(), do: say("#{if Node.connect(n), do: "connected", else: "cannot connect"} #{n}")

      {:ok, _self} ->
        :ok

      :error ->
        say("ignored #{byte_size(data)} bytes")
    end

    {:noreply, s}
  end

  def handle_info({:nodeup, n}, s), do: (say("nodeup #{n}"); {:noreply, s})
  def handle_info({:nodedown, n}, s), do: (say("nodedown #{n}"); {:noreply, s})
  def handle_info(_, s), do: {:noreply, s}

  defp heartbeat, do: "heartbeat::" <> :erlang.term_to_binary(%{node: node()})

  defp packet(nil), do: heartbeat()

  defp packet(secret) do
    iv = :crypto.strong_rand_bytes(16)
    text = heartbeat()
    pad = 16 - rem(byte_size(text), 16)
    padded = text <> :binary.copy(<<pad>>, pad)
    iv <> :crypto.crypto_one_time(:aes_256_cbc, :crypto.hash(:sha256, secret), iv, padded, true)
  end

  defp read(data, nil), do: node_of(data)

  defp read(<<iv::binary-16, ct::binary>>, secret) when rem(byte_size(ct), 16) == 0 and ct != <<>> do
    padded = :crypto.crypto_one_time(:aes_256_cbc, :crypto.hash(:sha256, secret), iv, ct, false)
    pad = :binary.last(padded)

    if pad <= 16 and pad <= byte_size(padded) and
         binary_part(padded, byte_size(padded), -pad) == :binary.copy(<<pad>>, pad) do
      node_of(binary_part(padded, 0, byte_size(padded) - pad))
    else
      :error
    end
  end

  defp read(_, _), do: :error

  defp node_of(<<"heartbeat::", rest::binary>>) do
    case (try do
            :erlang.binary_to_term(rest)
          rescue
            _ -> nil
          end) do
      %{node: n} when is_atom(n) -> {:ok, n}
      _ -> :error
    end
  end

  defp node_of(_), do: :error

  defp parse_ip(s) do
    {:ok, ip} = :inet.parse_address(String.to_charlist(s))
    ip
  end

  defp say(line), do: IO.puts(line)
end

env = fn k, d -> System.get_env(k) || d end

opts = [
  mode: env.("GOSSIP_MODE", "both"),
  secret: System.get_env("GOSSIP_SECRET"),
  port: String.to_integer(env.("GOSSIP_PORT", "45892")),
  addr: env.("GOSSIP_ADDR", "233.252.1.32"),
  if: System.get_env("GOSSIP_IF"),
  ttl: String.to_integer(env.("GOSSIP_TTL", "1"))
]

{:ok, _} = GossipStandin.start_link(opts)
IO.puts("standin #{node()} #{opts[:mode]}#{if opts[:secret], do: " with secret", else: ""}")
Process.sleep(:infinity)
