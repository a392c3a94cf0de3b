#!/usr/bin/env escript
%%! -epmd_module make_seeds -setcookie fuzzcookie
%% make_seeds.escript: writes the committed seed corpora fuzz/seeds/<target>/ from what OTP really sends.
%%  - fuzz_term: term_to_binary of every term type (and the older encodings of some).
%%  - fuzz_handshake: this node's handshake bytes in both roles, recorded from the socket: it connects to a
%%    fake acceptor (this script, answering with fuzz_handshake.c's fixed cookie and challenge, so the
%%    digests OTP computes are the ones the harness wants), and a fake initiator connects to it.
%%  - fuzz_frame, fuzz_control: the frames OTP sent the fake node after that handshake, plus every control
%%    message built as erl_dist_protocol describes it, and fragments cut as dist_msg_end cuts them.
%%  - fuzz_epmd: requests as a node sends them and replies recorded from a real `epmd -port P`.
%%  - fuzz_pg: pg's messages between scopes (discover, sync as a cast, join, leave), terms one after another.
%% Run from the repository root: fuzz/make_seeds.escript (needs erl and /usr/bin/epmd; the build does not).
%% Reruns give the same files except for refs and OTP's own random challenges (and digests over them).
%% The node uses this module as its epmd module (-epmd_module above), so it needs no epmd for the handshake.
-module(make_seeds).
-mode(compile).
-export([main/1]).
-export([start_link/0, register_node/2, register_node/3, port_please/2, port_please/3, address_please/3,
         listen_port_please/2, names/1]).

-define(COOKIE, "fuzzcookie").
-define(CHALLENGE, 16#11223344).       % OUR_CHALLENGE in fuzz_handshake.c
-define(CREATION, 16#5eed).
%% cnode's DIST_FLAGS_DEFAULT (dist/dist.h): what the fake node announces.
-define(FLAGS, 16#d07df4fbd).

main(_) ->
    Root = "fuzz/seeds",
    [ok = filelib:ensure_dir(filename:join([Root, T, "x"])) ||
        T <- ["fuzz_term", "fuzz_handshake", "fuzz_frame", "fuzz_control", "fuzz_epmd", "fuzz_pg"]],
    {ok, _} = net_kernel:start(['a@127.0.0.1', longnames]),
    terms(Root),
    {Frames, Hs} = handshakes(),
    handshake_seeds(Root, Hs),
    frame_seeds(Root, Frames),
    control_seeds(Root, Frames),
    epmd_seeds(Root),
    pg_seeds(Root),
    io:format("seeds written under ~s~n", [Root]).

write(Root, Target, Name, Bytes) ->
    ok = file:write_file(filename:join([Root, Target, Name]), Bytes).

%% ---- epmd module callbacks: every name is this script's fake node ----

start_link() -> ignore.
register_node(Name, Port) -> register_node(Name, Port, inet_tcp).
register_node(_Name, Port, _Driver) ->
    persistent_term:put({?MODULE, dist_port}, Port),
    {ok, 3}.
listen_port_please(_Name, _Host) -> {ok, 0}.
port_please(Name, Host) -> port_please(Name, Host, infinity).
port_please(_Name, _Host, _Timeout) ->
    {port, persistent_term:get({?MODULE, fake_port}), 6}.
address_please(_Name, _Host, _Family) ->
    {ok, {127, 0, 0, 1}, persistent_term:get({?MODULE, fake_port}), 6}.
names(_Host) -> {error, address}.

%% ---- fuzz_term ----

terms(Root) ->
    Remote = remote_pid('b@10.0.0.2', 7, 3, 16#12345678),
    RemoteRef = remote_ref('b@10.0.0.2', 16#12345678, [1, 2, 3]),
    Y = 42,
    Local = fun(X) -> X + Y end,
    Ts = [{small_int, 7}, {int, -123456}, {int_max, 16#7fffffff}, {int_min, -16#80000000},
          {small_big, 1 bsl 64}, {small_big_neg, -(1 bsl 100)}, {large_big, 1 bsl 2100},
          {float, 3.141592653589793}, {float_neg_zero, -0.0}, {float_tiny, 5.0e-324},
          {atom, hello}, {atom_latin1, 'caf\x{e9}'}, {atom_utf8, '\x{65e5}\x{672c}'},
          {atom_long, list_to_atom(lists:duplicate(255, $x))}, {atom_empty, ''},
          {nil, []}, {string, "hello world"}, {list, [1, atom, "str", 2.5]},
          {improper, [1, 2 | tail]}, {nested, [[[[[[[[[[deep]]]]]]]]]]},
          {tuple, {a, 1, "b"}}, {empty_tuple, {}}, {large_tuple, list_to_tuple(lists:seq(1, 300))},
          {binary, <<"bytes", 0, 255>>}, {empty_binary, <<>>}, {bitstring, <<5:3>>},
          {bitstring_long, <<1, 2, 3, 7:5>>},
          {map_small, #{a => 1, <<"b">> => [2], 3 => {c}}}, {map_empty, #{}},
          {map_big, maps:from_list([{K, K * K} || K <- lists:seq(1, 40)])},
          {map_nested, #{k => #{1 => #{2.0 => []}}}},
          {pid, self()}, {pid_remote, Remote}, {ref, make_ref()}, {ref_remote, RemoteRef},
          {port, hd(erlang:ports())},
          {fun_local, Local}, {fun_export, fun lists:map/2}, {fun_noenv, fun() -> ok end},
          {mixed, {self(), make_ref(), [#{x => <<1:1>>}], -1 bsl 70, 'q\x{f6}'}}],
    [write(Root, "fuzz_term", atom_to_list(N), term_to_binary(T)) || {N, T} <- Ts],
    %% Older encodings: FLOAT_EXT text floats and latin-1 ATOM_EXT (minor_version 0), compressed (rejected).
    write(Root, "fuzz_term", "minor0_float_atoms", term_to_binary({1.5, hello, 'caf\x{e9}'}, [{minor_version, 0}])),
    write(Root, "fuzz_term", "compressed", term_to_binary(lists:seq(1, 100), [compressed])),
    %% Hand-built old identifier formats: PID_EXT, NEW_REFERENCE_EXT, REFERENCE_EXT, PORT_EXT, V4_PORT_EXT.
    NodeA = <<119, 1, $n>>,
    write(Root, "fuzz_term", "old_pid", <<131, 103, NodeA/binary, 1:32, 2:32, 3>>),
    write(Root, "fuzz_term", "old_new_ref", <<131, 114, 2:16, NodeA/binary, 1, 5:32, 6:32>>),
    write(Root, "fuzz_term", "old_ref", <<131, 101, NodeA/binary, 9:32, 1>>),
    write(Root, "fuzz_term", "old_port", <<131, 102, NodeA/binary, 9:32, 1>>),
    write(Root, "fuzz_term", "v4_port", <<131, 120, NodeA/binary, 1:64, 2:32>>),
    write(Root, "fuzz_term", "list_ext_nil_tail", <<131, 108, 2:32, 97, 1, 97, 2, 106>>),
    ok.

remote_pid(Node, Id, Serial, Creation) ->
    N = atom_to_binary(Node, utf8),
    binary_to_term(<<131, 88, 119, (byte_size(N)), N/binary, Id:32, Serial:32, Creation:32>>).

remote_ref(Node, Creation, Ids) ->
    N = atom_to_binary(Node, utf8),
    binary_to_term(<<131, 90, (length(Ids)):16, 119, (byte_size(N)), N/binary, Creation:32,
                     << <<I:32>> || I <- Ids >>/binary>>).

%% ---- real handshakes (this node is 'a@127.0.0.1', cookie fuzzcookie) ----

recv_msg(S) ->
    {ok, <<Len:16>>} = gen_tcp:recv(S, 2, 5000),
    {ok, Body} = gen_tcp:recv(S, Len, 5000),
    <<Len:16, Body/binary>>.

framed(Body) -> <<(byte_size(Body)):16, Body/binary>>.

send_msg(S, Body) -> ok = gen_tcp:send(S, <<(byte_size(Body)):16, Body/binary>>).

digest(Challenge) -> erlang:md5([?COOKIE, integer_to_list(Challenge)]).

challenge_msg(Name) ->
    N = list_to_binary(Name),
    <<$N, ?FLAGS:64, ?CHALLENGE:32, ?CREATION:32, (byte_size(N)):16, N/binary>>.

%% OTP as initiator towards a fake acceptor; returns what OTP sent: {name, reply, [complement], frames}.
otp_initiates(Fake) ->
    {ok, L} = gen_tcp:listen(0, [binary, {active, false}, {ip, {127, 0, 0, 1}}, {reuseaddr, true}]),
    {ok, Port} = inet:port(L),
    persistent_term:put({?MODULE, fake_port}, Port),
    Node = list_to_atom(Fake ++ "@127.0.0.1"),
    Self = self(),
    spawn(fun() -> Self ! {connected, net_kernel:connect_node(Node)} end),
    {ok, S} = gen_tcp:accept(L, 5000),
    Name = recv_msg(S),
    send_msg(S, <<"sok">>),
    send_msg(S, challenge_msg(Fake ++ "@127.0.0.1")),
    Complement = case Name of
                     <<_:16, $n, _/binary>> -> [recv_msg(S)];
                     _ -> []
                 end,
    Reply = recv_msg(S),
    <<_:16, $r, TheirCh:32, Dig:16/binary>> = Reply,
    Dig = digest(?CHALLENGE),
    send_msg(S, <<$a, (digest(TheirCh))/binary>>),
    receive {connected, true} -> ok after 5000 -> error(no_connect) end,
    Frames = provoke(S, Node),
    gen_tcp:close(S),
    gen_tcp:close(L),
    {Name, Reply, Complement, Frames}.

%% Makes this node send the fake node some of every kind of message, and records the frames.
provoke(S, Node) ->
    FakePid = remote_pid(Node, 1, 0, ?CREATION),
    {any, Node} ! {hello, [1, 2, 3], self(), #{k => <<"v">>}},
    FakePid ! {direct, 3.5, make_ref()},
    erlang:monitor(process, FakePid),
    erlang:monitor(process, {reg, Node}),
    Linker = spawn(fun() -> link(FakePid), receive stop -> unlink(FakePid) end end),
    timer:sleep(50),
    Linker ! stop,
    _ = erlang:spawn_request(Node, lists, seq, [1, 3], []),
    exit(FakePid, some_reason),
    group_leader(self(), FakePid),
    remote_ref(Node, ?CREATION, [1, 2, 3]) ! {to_alias, 1},
    rpc:cast(Node, erlang, node, []),
    collect(S, <<>>, 600).

collect(S, Acc, Ms) ->
    case gen_tcp:recv(S, 0, Ms) of
        {ok, B} -> collect(S, <<Acc/binary, B/binary>>, 200);
        {error, _} -> Acc
    end.

%% A fake initiator towards this node (OTP as acceptor): what OTP sent back.
otp_accepts(Fake, Extra) ->
    Port = persistent_term:get({?MODULE, dist_port}),
    {ok, S} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}]),
    N = list_to_binary(Fake ++ "@127.0.0.1"),
    send_msg(S, <<$N, ?FLAGS:64, ?CREATION:32, (byte_size(N)):16, N/binary>>),
    Status = recv_msg(S),
    case Status of
        <<_:16, "sok">> ->
            Challenge = recv_msg(S),
            <<_:16, $N, _:64, TheirCh:32, _/binary>> = Challenge,
            send_msg(S, <<$r, ?CHALLENGE:32, (digest(TheirCh))/binary>>),
            Ack = recv_msg(S),
            Extra(S),
            gen_tcp:close(S),
            [Status, Challenge, Ack];
        _ ->
            gen_tcp:close(S),
            [Status]
    end.

handshakes() ->
    {Name6, Reply6, [], Frames} = otp_initiates("fake"),
    %% OTP 25 sends 'N' even to a version 5 node; the old 'n' name and 'c' complement of OTP 23/24 are
    %% built from the same fields as erl_dist_protocol lays them out.
    <<_:16, $N, Fl:64, Cr:32, NL:16, Nm:NL/binary>> = Name6,
    Name5 = framed(<<$n, 5:16, (Fl band 16#ffffffff):32, Nm/binary>>),
    Compl5 = framed(<<$c, (Fl bsr 32):32, Cr:32>>),
    Reply5 = Reply6,
    Acc6 = otp_accepts("init6", fun(_) -> ok end),
    %% OTP 25 closes on an old 'n' name; an OTP 23/24 acceptor answers it as it answers 'N' (status, 'N'
    %% challenge, ack), so the version 5 initiator seed reuses those replies.
    Acc5 = Acc6,
    %% While init7 is connected, a second attempt under its name is answered "alive".
    Alive = otp_accepts("init7", fun(_) -> [St | _] = otp_accepts("init7", fun(_) -> ok end),
                                              persistent_term:put({?MODULE, alive}, St) end),
    AliveSt = persistent_term:get({?MODULE, alive}),
    {Frames, #{name6 => Name6, reply6 => Reply6, name5 => Name5, reply5 => Reply5, compl5 => Compl5,
               acc6 => Acc6, acc5 => Acc5, alive_ok => Alive, alive_st => AliveSt}}.

%% fuzz_handshake input: config byte (bit 0 acceptor, bit 1 version 5, bit 2 no required flags, bit 3
%% expect peer a@127.0.0.1), then [length byte][chunk], with the answer byte after a NAME or ALIVE event.
chunks(Msgs) -> << <<(chunk(M))/binary>> || M <- Msgs >>.
chunk({answer, B}) -> <<B>>;
chunk(Bin) when byte_size(Bin) =< 255 -> <<(byte_size(Bin)), Bin/binary>>;
chunk(<<B:255/binary, Rest/binary>>) -> <<255, B/binary, (chunk(Rest))/binary>>.

handshake_seeds(Root, Hs) ->
    #{name6 := Name6, reply6 := Reply6, name5 := Name5, reply5 := Reply5, compl5 := Compl5,
      acc6 := Acc6, acc5 := Acc5, alive_st := AliveSt} = Hs,
    W = fun(N, Cfg, Msgs) -> write(Root, "fuzz_handshake", N, <<Cfg, (chunks(Msgs))/binary>>) end,
    %% Acceptor (we answer OTP the initiator): status ok (0), ok_simultaneous (1), alive (4) then "true".
    W("acceptor_v6_ok", 1, [Name6, {answer, 0}, Reply6]),
    W("acceptor_v6_ok_simultaneous", 1, [Name6, {answer, 1}, Reply6]),
    W("acceptor_v6_alive_true", 1, [Name6, {answer, 4}, <<0, 5, "strue">>, Reply6]),
    W("acceptor_v6_alive_false", 1, [Name6, {answer, 4}, <<0, 6, "sfalse">>]),
    W("acceptor_v6_nok", 1, [Name6, {answer, 2}]),
    W("acceptor_v5_complement", 1, [Name5, {answer, 0}, Compl5, Reply5]),
    W("acceptor_v6_one_chunk", 1, [<<Name6/binary, Reply6/binary>>, {answer, 0}]),
    %% Initiator (OTP the acceptor answers us): version 6 and 5, with the peer name checked.
    W("initiator_v6", 8, Acc6),
    W("initiator_v6_any_peer", 0, Acc6),
    W("initiator_v5", 2 bor 8, Acc5),
    W("initiator_alive_true", 0, [AliveSt, {answer, 1} | tl(Acc6)]),
    W("initiator_alive_false", 0, [AliveSt, {answer, 0}]),
    W("initiator_nok", 0, [<<0, 4, "snok">>]),
    W("initiator_not_allowed", 0, [<<0, 12, "snot_allowed">>]),
    W("initiator_v6_split", 8, [binary:part(iolist_to_binary(Acc6), 0, 3),
                                 binary:part(iolist_to_binary(Acc6), 3, byte_size(iolist_to_binary(Acc6)) - 3)]),
    ok.

%% ---- fuzz_frame ----

%% fuzz_frame input: max-frame byte (255: none), max-sequences byte, 2-byte byte budget, fragment-size byte.
frame_hdr(Frag) -> <<255, 7, 255, 255, Frag>>.

frame(Body) -> <<(byte_size(Body)):32, Body/binary>>.

%% One message cut as dist_msg_end cuts it: 131,69 start, 131,70 continuations, ids counting down to 1.
fragments(Seq, Body, Size) ->
    Parts = split(Body, Size),
    N = length(Parts),
    iolist_to_binary(
      [case I of
           1 -> frame(<<131, 69, Seq:64, N:64, 0, P/binary>>);
           _ -> frame(<<131, 70, Seq:64, (N - I + 1):64, P/binary>>)
       end || {I, P} <- lists:zip(lists:seq(1, N), Parts)]).

split(B, Size) when byte_size(B) =< Size -> [B];
split(B, Size) -> <<P:Size/binary, R/binary>> = B, [P | split(R, Size)].

frame_seeds(Root, Frames) ->
    W = fun(N, Bytes) -> write(Root, "fuzz_frame", N, Bytes) end,
    Body = <<(term_to_binary({2, '', self()}))/binary, (term_to_binary({hello, <<"world">>}))/binary>>,
    Plain = strip_versions(Body),
    W("otp_frames", <<(frame_hdr(0))/binary, Frames/binary>>),
    W("tick_normal_pass", <<(frame_hdr(0))/binary, 0:32, (frame(<<131, 68, 0, Plain/binary>>))/binary,
                            (frame(<<112, Body/binary>>))/binary>>),
    W("fragments", <<(frame_hdr(16))/binary, (fragments(1, Plain, 16))/binary>>),
    W("fragments_interleaved", <<(frame_hdr(8))/binary,
                                 (interleave(fragments(1, Plain, 20), fragments(2, Plain, 30)))/binary>>),
    W("fragment_single", <<(frame_hdr(0))/binary, (fragments(9, Plain, 1000))/binary>>),
    W("fragments_limit", <<255, 0, 0, 40, 4, (fragments(1, Plain, 12))/binary>>),
    ok.

%% Frames of two fragmented messages, alternately.
interleave(A, B) -> iolist_to_binary(zip_frames(frames_of(A), frames_of(B))).
frames_of(<<>>) -> [];
frames_of(<<L:32, F:L/binary, R/binary>>) -> [<<L:32, F/binary>> | frames_of(R)].
zip_frames([], B) -> B;
zip_frames(A, []) -> A;
zip_frames([X | A], [Y | B]) -> [X, Y | zip_frames(A, B)].

%% Control and payload as a 131,68 body carries them: each term without its version byte.
strip_versions(Bin) -> strip(Bin, []).
strip(<<>>, Acc) -> iolist_to_binary(lists:reverse(Acc));
strip(<<131, _/binary>> = B, Acc) ->
    {T, Used} = binary_to_term(B, [used]),
    <<_:Used/binary, R/binary>> = B,
    <<131, E/binary>> = term_to_binary(T),
    strip(R, [E | Acc]).

%% ---- fuzz_control ----

control_seeds(Root, Frames) ->
    W = fun(N, Ctl, Payload) ->
                Bytes = case Payload of
                            none -> ctl(Ctl);
                            _ -> <<(ctl(Ctl))/binary, (ctl(Payload))/binary>>
                        end,
                write(Root, "fuzz_control", N, Bytes)
        end,
    P = self(), Q = remote_pid('b@10.0.0.2', 9, 0, 7), R = make_ref(), Tok = {0, 1, 2, P, 0},
    Msg = {msg, [1, 2], #{x => y}},
    W("01_link", {1, P, Q}, none),
    W("02_send", {2, '', Q}, Msg),
    W("03_exit", {3, P, Q, normal}, none),
    W("04_unlink", {4, P, Q}, none),
    W("05_node_link", {5}, none),
    W("06_reg_send", {6, P, '', rex}, Msg),
    W("07_group_leader", {7, P, Q}, none),
    W("08_exit2", {8, P, Q, kill}, none),
    W("12_send_tt", {12, '', Q, Tok}, Msg),
    W("13_exit_tt", {13, P, Q, Tok, shutdown}, none),
    W("16_reg_send_tt", {16, P, '', net_kernel, Tok}, Msg),
    W("18_exit2_tt", {18, P, Q, Tok, {shutdown, x}}, none),
    W("19_monitor_p", {19, P, Q, R}, none),
    W("19_monitor_p_name", {19, P, some_name, R}, none),
    W("20_demonitor_p", {20, P, Q, R}, none),
    W("21_monitor_p_exit", {21, Q, P, R, noproc}, none),
    W("22_send_sender", {22, P, Q}, Msg),
    W("23_send_sender_tt", {23, P, Q, Tok}, Msg),
    W("24_payload_exit", {24, P, Q}, {badarg, [{m, f, 1, []}]}),
    W("25_payload_exit_tt", {25, P, Q, Tok}, normal),
    W("26_payload_exit2", {26, P, Q}, kill),
    W("27_payload_exit2_tt", {27, P, Q, Tok}, kill),
    W("28_payload_monitor_p_exit", {28, some_name, P, R}, noconnection),
    W("29_spawn_request", {29, R, P, P, {lists, seq, 2}, [link, monitor]}, [1, 3]),
    W("30_spawn_request_tt", {30, R, P, P, {erlang, node, 0}, [], Tok}, []),
    W("31_spawn_reply", {31, R, P, 3, Q}, none),
    W("32_spawn_reply_tt", {32, R, P, 0, badarg, Tok}, none),
    W("33_alias_send", {33, P, R}, Msg),
    W("34_alias_send_tt", {34, P, R, Tok}, Msg),
    W("35_unlink_id", {35, 1 bsl 70, P, Q}, none),
    W("36_unlink_id_ack", {36, 17, P, Q}, none),
    W("37_altact_alias_prio", {37, 5, P, R}, Msg),
    W("37_altact_name_token", {37, 10, P, rex, Tok}, Msg),
    W("37_altact_exit_pid", {37, 16, P, Q}, kill),
    W("37_altact_exit_alias_prio_extra", {37, 21 bor (1 bsl 70), P, R, Tok, future}, {shutdown, x}),
    W("99_unknown_op", {99, P, Q}, none),
    %% A pass-through body: control and payload each with its 131.
    write(Root, "fuzz_control", "pass_through_send",
          <<(term_to_binary({2, '', Q}))/binary, (term_to_binary(Msg))/binary>>),
    %% The bodies of the frames OTP really sent.
    Bodies = [B || <<_:32, 131, 68, 0, B/binary>> <- frames_of(Frames)],
    [write(Root, "fuzz_control", "otp_" ++ integer_to_list(I), B) ||
        {I, B} <- lists:zip(lists:seq(1, length(Bodies)), Bodies)],
    ok.

ctl(T) -> <<131, E/binary>> = term_to_binary(T), E.

%% ---- fuzz_epmd: input is a selector byte (0 alive2 resp, 1 port2 resp, 2 names hdr, 3 request with no
%% max; a request's selector 3 + 4*k sets max 16*k), then the bytes. ----

epmd_seeds(Root) ->
    W = fun(N, Sel, Bytes) -> write(Root, "fuzz_epmd", N, <<Sel, Bytes/binary>>) end,
    %% A private epmd on a port that was free a moment ago; killed by its pid at the end.
    {ok, L} = gen_tcp:listen(0, []), {ok, P} = inet:port(L), gen_tcp:close(L),
    Port = open_port({spawn_executable, "/usr/bin/epmd"},
                     [{args, ["-port", integer_to_list(P), "-address", "127.0.0.1"]}, exit_status]),
    {os_pid, OsPid} = erlang:port_info(Port, os_pid),
    try
        wait_epmd(P, 50),
        Alive = alive2_req(<<"seed">>, 4711, 6, <<"extra!">>),
        Alive5 = alive2_req(<<"old">>, 4712, 5, <<>>),
        {Reg, Resp} = ask_keep(P, Alive),
        {Reg5, Resp5} = ask_keep(P, Alive5),
        PortReq = name_req(122, <<"seed">>),
        Port2 = ask(P, PortReq),
        Port2None = ask(P, name_req(122, <<"nobody">>)),
        Names = ask(P, <<1:16, 110>>),
        gen_tcp:close(Reg), gen_tcp:close(Reg5),
        W("alive2_x_resp", 0, Resp),
        W("alive2_resp_legacy", 0, Resp5),
        W("port2_resp", 1, Port2),
        W("port2_resp_not_found", 1, Port2None),
        W("names_resp", 2, Names),
        W("req_alive2", 3, Alive),
        W("req_alive2_v5", 3, Alive5),
        W("req_alive2_max", 3 + 4 * 2, Alive),
        W("req_port_please2", 3, PortReq),
        W("req_names", 3, <<1:16, 110>>),
        W("req_dump", 3, <<1:16, 100>>),
        W("req_kill", 3, <<1:16, 107>>),
        W("req_stop", 3, name_req(115, <<"seed">>))
    after
        os:cmd("kill " ++ integer_to_list(OsPid))
    end.

wait_epmd(_, 0) -> error(epmd_not_up);
wait_epmd(P, N) ->
    case gen_tcp:connect({127, 0, 0, 1}, P, []) of
        {ok, S} -> gen_tcp:close(S);
        _ -> timer:sleep(50), wait_epmd(P, N - 1)
    end.

alive2_req(Name, DistPort, High, Extra) ->
    Body = <<120, DistPort:16, 77, 0, High:16, 5:16, (byte_size(Name)):16, Name/binary,
             (byte_size(Extra)):16, Extra/binary>>,
    <<(byte_size(Body)):16, Body/binary>>.

name_req(Tag, Name) -> <<(1 + byte_size(Name)):16, Tag, Name/binary>>.

%% One request on a fresh connection; epmd answers and closes.
ask(P, Req) ->
    {ok, S} = gen_tcp:connect({127, 0, 0, 1}, P, [binary, {active, false}]),
    ok = gen_tcp:send(S, Req),
    Resp = collect(S, <<>>, 2000),
    gen_tcp:close(S),
    Resp.

%% ALIVE2: epmd keeps the connection as the registration, so read just the reply.
ask_keep(P, Req) ->
    {ok, S} = gen_tcp:connect({127, 0, 0, 1}, P, [binary, {active, false}]),
    ok = gen_tcp:send(S, Req),
    {ok, <<Tag>>} = gen_tcp:recv(S, 1, 2000),
    {ok, Rest} = gen_tcp:recv(S, case Tag of 118 -> 5; 121 -> 3 end, 2000),
    {S, <<Tag, Rest/binary>>}.

%% pg: what one scope sends another, as pg.erl builds it; each seed is terms one after another, no version byte.
pg_seeds(Root) ->
    P = self(),
    Q = spawn(fun() -> ok end),
    Body = fun(T) -> <<131, B/binary>> = term_to_binary(T), B end,
    Seeds = [{"discover", [{discover, P}]},
             {"discover3", [{discover, P, 1}]},
             {"sync", [{'$gen_cast', {sync, P, [{g, [Q, Q]}, {{t, <<"x">>}, [Q]}]}}]},
             {"join_leave", [{join, P, g, Q}, {join, P, g, [Q, P]}, {leave, P, Q, [g]}, {leave, P, [P], [g, h]}]},
             {"session", [{discover, P}, {'$gen_cast', {sync, P, []}}, {join, P, 'Elixir.MyApp.PubSub.Adapter', Q},
                          {'DOWN', make_ref(), process, P, noconnection}, {nodeup, 'b@127.0.0.1'}]}],
    [write(Root, "fuzz_pg", Name, << <<(Body(T))/binary>> || T <- Ts >>) || {Name, Ts} <- Seeds].
