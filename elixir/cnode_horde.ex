defmodule CNode.Horde do
  @moduledoc """
  C workers as children of a `Horde.DynamicSupervisor` shared by BEAM nodes and cnode C nodes.

  Horde assumes every member can run every child. In a cluster that mixes BEAM nodes and C nodes that is
  not true, so every member places children by one shared rule: a *capability filter* in front of Horde's
  own `Horde.UniformDistribution` ring.

    * A child is a **C child** exactly when its child-spec map has `cnode: true` (see `c_child?/1`).
    * A member is **C-capable** exactly when its node name starts with the configured prefix, `"cnode"`
      by default (see `c_member?/1`).
    * C children go on the ring of the alive C-capable members, all other children on the ring of the
      alive BEAM members. `CNode.Horde.Distribution` is that strategy; the C node implements the same rule
      natively (bit-exact, including the libring ring).

  ## Use

      # in the supervision tree of EVERY BEAM node, with identical options
      {Horde.DynamicSupervisor,
       name: MyApp.Sup, strategy: :one_for_one, members: :auto,
       distribution_strategy: CNode.Horde.Distribution,
       proxy_message_ttl: 5}

      # anywhere in the cluster: a C worker, running on some C node
      {:ok, pid} = CNode.Horde.start_c_child(MyApp.Sup, CNode.Demo.Counter, [42])
      GenServer.call(pid, :get)   # => 42

  ## Operating rules

    1. **Same rule on every member.** The distribution strategy is a per-node option that nothing checks
       across the cluster. Every BEAM member must run `CNode.Horde.Distribution` with the same prefix and
       the same version of this module; the C nodes apply the same rule with the prefix `"cnode"`. A member
       deciding differently makes `start_child` requests bounce between nodes, and children get lost or
       duplicated at handoff. Treat the rule like a protocol version.
    2. **Roll out first.** Deploy the strategy to *all* BEAM nodes before the first C node joins. While no
       member is C-capable it places every ordinary child exactly where `Horde.UniformDistribution` does,
       so this step moves nothing.
    3. **Naming.** Name C nodes `cnode…@host` (`cnode1@10.0.0.7`); never give a BEAM node a name with the
       prefix: it would be handed C children it cannot run. The C node refuses to start under a name
       without the prefix.
    4. **Set `proxy_message_ttl`** (e.g. `5`) on every BEAM member. It bounds the proxy loop that a
       misconfigured member (rule 1) would cause; Horde's default is `:infinity`.
    5. Run **at least two C nodes** if C children must move to another C node quickly when one dies. With
       none alive, starting a C child returns `{:error, :no_alive_nodes}`, and existing C children wait
       for a C node to come back.
    6. Horde ≥ 0.9 is required (the strategy must receive the child spec).

  ## Configuration

  The prefix is read at every decision from the application environment:

      config :cnode_horde, c_node_prefix: "cnode"

  It must be a non-empty string and the same on every node (rule 1). The C nodes of this project use
  `"cnode"`, so change it only together with C nodes that use the same prefix.
  """

  # Horde is a runtime dependency of the caller's application; this file compiles without it.
  @compile {:no_warn_undefined, [Horde.DynamicSupervisor]}

  @default_prefix "cnode"
  @spec_opts [:id, :restart, :shutdown, :type, :modules]

  @typedoc "A `Horde.DynamicSupervisor.Member` struct (or any map with its `:name` and `:status`)."
  @type member :: %{required(:name) => {term(), node()}, optional(atom()) => term()}

  @doc """
  Builds the child spec of a C worker.

  `args` is the **argument list** of the start call, as in any `{M, F, A}` child spec: the spec's start is
  `{c_module, :start_link, args}`, and the C entry point registered for `c_module` receives `args` as the
  `A` of that tuple. So `c_child_spec(:c_counter, [42])` describes the call `c_counter.start_link(42)`, and
  the demo worker, whose entry point takes the argument list `[N]`, is
  `c_child_spec(CNode.Demo.Counter, [42])`: start `{CNode.Demo.Counter, :start_link, [42]}`. A worker
  taking a keyword list is `c_child_spec(MyApp.CWorker, [[interval: 500]])`.

  Options:

    * `:id` - the child id (default `c_module`). Horde replaces it by a random integer when it starts
      the child, so it does not influence placement.
    * `:restart`, `:shutdown`, `:type`, `:modules` - put into the spec only when given (as with any Horde
      child spec; Horde's defaults apply otherwise).

  The spec always carries `cnode: true`, which marks it as a C child. Unknown options raise
  `ArgumentError`.

  Placement depends on the spec without its id: children with identical specs (same module, arguments
  and options) all land on the same C node. Vary the arguments to spread them.

      iex> CNode.Horde.c_child_spec(:c_counter, [42], restart: :transient)
      %{cnode: true, id: :c_counter, restart: :transient, start: {:c_counter, :start_link, [42]}}
  """
  @spec c_child_spec(module(), [term()], keyword()) :: map()
  def c_child_spec(c_module, args, opts \\ [])
      when is_atom(c_module) and is_list(args) and is_list(opts) do
    case Keyword.keys(opts) -- @spec_opts do
      [] -> :ok
      bad -> raise ArgumentError, "unknown option(s) #{inspect(bad)} for a C child spec; allowed: #{inspect(@spec_opts)}"
    end

    base = %{id: Keyword.get(opts, :id, c_module), start: {c_module, :start_link, args}, cnode: true}

    Enum.reduce([:restart, :shutdown, :type, :modules], base, fn key, spec ->
      case Keyword.fetch(opts, key) do
        {:ok, value} -> Map.put(spec, key, value)
        :error -> spec
      end
    end)
  end

  @doc """
  Starts a C worker under the Horde supervisor `sup`: `Horde.DynamicSupervisor.start_child/2` with
  `c_child_spec(c_module, args, opts)`.

  `args` is the argument list of `c_module.start_link` (see `c_child_spec/3`):
  `start_c_child(MyApp.Sup, :c_counter, [42], restart: :transient)` runs `c_counter.start_link(42)` on a
  C node.

  Returns what Horde returns: `{:ok, pid}` (a pid on a C node), `{:error, :no_alive_nodes}` when no C
  node is an alive member, or another `{:error, reason}`.
  """
  @spec start_c_child(Supervisor.supervisor(), module(), [term()], keyword()) ::
          DynamicSupervisor.on_start_child()
  def start_c_child(sup, c_module, args, opts \\ []) do
    Horde.DynamicSupervisor.start_child(sup, c_child_spec(c_module, args, opts))
  end

  @doc """
  True exactly when `spec` is a child-spec map whose `:cnode` value is the atom `true`.
  """
  @spec c_child?(term()) :: boolean()
  def c_child?(%{cnode: true}), do: true
  def c_child?(_), do: false

  @doc """
  True exactly when the member's node name starts with the configured prefix (`"cnode"` by default,
  see the module documentation). `member` is a `Horde.DynamicSupervisor.Member` or any map with
  `name: {supervisor_name, node}`.
  """
  @spec c_member?(member() | term()) :: boolean()
  def c_member?(%{name: {_sup, node}}) when is_atom(node),
    do: String.starts_with?(Atom.to_string(node), c_node_prefix())

  def c_member?(_), do: false

  @doc """
  The configured node-name prefix of C-capable members (`config :cnode_horde, c_node_prefix: "cnode"`).
  """
  @spec c_node_prefix() :: String.t()
  def c_node_prefix do
    case Application.get_env(:cnode_horde, :c_node_prefix, @default_prefix) do
      prefix when is_binary(prefix) and byte_size(prefix) > 0 ->
        prefix

      other ->
        raise ArgumentError,
              "config :cnode_horde, :c_node_prefix must be a non-empty string, got: #{inspect(other)}"
    end
  end
end

defmodule CNode.Horde.Distribution do
  @moduledoc """
  A `Horde.DistributionStrategy`: the capability filter of `CNode.Horde` in front of
  `Horde.UniformDistribution`.

  C children (`cnode: true`) are placed on the ring of the C-capable members, every other child on the
  ring of the other members; among those, `Horde.UniformDistribution` decides (alive members only, the
  libring hash ring over the spec without its id). Configure it on every BEAM member with
  `distribution_strategy: CNode.Horde.Distribution`, and read the operating rules in `CNode.Horde`.
  """

  # Horde is only called at run time, and the behaviour is declared only when Horde is there at compile
  # time: this file also compiles, without warnings, where Horde is absent.
  @compile {:no_warn_undefined, [Horde.UniformDistribution]}

  if Code.ensure_loaded?(Horde.DistributionStrategy) do
    @behaviour Horde.DistributionStrategy
  end

  @doc """
  Chooses the member for `spec`: `{:ok, member}`, or `{:error, :no_alive_nodes}` when no alive member
  has the capability the child needs.
  """
  @spec choose_node(map(), [CNode.Horde.member()]) :: {:ok, CNode.Horde.member()} | {:error, term()}
  def choose_node(spec, members) do
    c_child? = CNode.Horde.c_child?(spec)
    eligible = Enum.filter(members, &(CNode.Horde.c_member?(&1) == c_child?))
    Horde.UniformDistribution.choose_node(spec, eligible)
  end

  @doc """
  Delegates to `Horde.UniformDistribution.has_quorum?/1` (always true), over all members.
  """
  @spec has_quorum?([CNode.Horde.member()]) :: boolean()
  def has_quorum?(members), do: Horde.UniformDistribution.has_quorum?(members)
end
