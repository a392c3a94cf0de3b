# Test-only stand-ins for the parts of Horde 0.10 that CNode.Horde.Distribution (elixir/cnode_horde.ex) calls,
# so interop/ring_suite.escript can run the strategy where Horde is not installed (CI). Written for this
# project from the placement rule in shared/spec/horde-wire.md §5.2 (Horde.UniformDistribution over a
# libring HashRing); no Horde or libring code. Checked against placements real Horde made in a captured
# 3-node cluster (interop/horde_placements.eterm, test `real_placements` of ring_suite).

defmodule Horde.DynamicSupervisor.Member do
  @moduledoc false
  defstruct [:status, :name]
end

defmodule Horde.DistributionStrategy do
  @moduledoc false
  @callback choose_node(spec :: map(), members :: [map()]) :: {:ok, map()} | {:error, term()}
  @callback has_quorum?(members :: [map()]) :: boolean()
end

defmodule Horde.UniformDistribution do
  @moduledoc false
  @behaviour Horde.DistributionStrategy

  # libring's ring: 2^32 - 1 (not 2^32), 128 points per node.
  @range 4_294_967_295
  @points 128

  # 1. only members whose status is :alive; none gives {:error, :no_alive_nodes};
  # 2. the key is phash2/1 of the spec without :id;
  # 3. ring points phash2({name, i}, 2^32 - 1), i in 1..128, names taken in the key order of a map keyed by
  #    name (ascending term order up to 32 names), a colliding point kept by the name that came first;
  # 4. the owner of the smallest point >= phash2(key, 2^32 - 1), else of the smallest point.
  # Returns the member (for a name given twice, the last alive one, as a map built from the list keeps).
  @impl true
  def choose_node(spec, members) do
    by_name =
      members
      |> Enum.filter(&match?(%{status: :alive}, &1))
      |> Map.new(fn member -> {member.name, member} end)

    if map_size(by_name) == 0 do
      {:error, :no_alive_nodes}
    else
      key = :erlang.phash2(Map.delete(spec, :id))
      {:ok, Map.fetch!(by_name, owner(Map.keys(by_name), key))}
    end
  end

  @impl true
  def has_quorum?(_members), do: true

  @doc false
  # The ring owner of `key` among `names` (inserted in the order given).
  def owner(names, key) do
    ring =
      Enum.reduce(names, %{}, fn name, ring ->
        Enum.reduce(1..@points, ring, fn i, ring ->
          Map.put_new(ring, :erlang.phash2({name, i}, @range), name)
        end)
      end)

    h = :erlang.phash2(key, @range)
    points = ring |> Map.keys() |> Enum.sort()
    point = Enum.find(points, hd(points), &(&1 >= h))
    Map.fetch!(ring, point)
  end
end
