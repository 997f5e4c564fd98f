%% Reads an EMQX acl.conf as EMQX does (file:consult/1) and checks each rule against the shapes EMQX 5's
%% rule compiler accepts. Prints one line per problem and exits 1, or prints "ok N rules" and exits 0.
%% Usage: escript emqx_acl_check.escript ACL_FILE [USERNAME_PATTERN_CASES...] where a case is
%% "+name" (the device pattern must take it) or "-name" (it must not).
main([Path | Cases]) ->
    case file:consult(Path) of
        {ok, Rules} ->
            Problems = lists:append([rule(R) || R <- Rules]) ++ cases(device_pattern(Rules), Cases),
            [io:format("~s~n", [P]) || P <- Problems],
            case Problems of
                [] -> io:format("ok ~p rules~n", [length(Rules)]), halt(0);
                _ -> halt(1)
            end;
        {error, Reason} ->
            io:format("~s: ~s~n", [Path, file:format_error(Reason)]),
            halt(1)
    end.

rule({Permission, all}) -> permission(Permission);
rule({Permission, Who, Action, Topics}) when is_list(Topics), Topics =/= [] ->
    permission(Permission) ++ who(Who) ++ action(Action) ++ lists:append([topic(T) || T <- Topics]);
rule(Other) -> [fmt("not a rule EMQX compiles: ~p", [Other])].

permission(P) when P =:= allow; P =:= deny -> [];
permission(P) -> [fmt("bad permission ~p", [P])].

who(all) -> [];
who({Kind, {re, Re}}) when Kind =:= username; Kind =:= user; Kind =:= clientid; Kind =:= client ->
    case re:compile(unicode:characters_to_binary(Re)) of
        {ok, _} -> [];
        {error, E} -> [fmt("bad regular expression ~p: ~p", [Re, E])]
    end;
who({Kind, Name}) when Kind =:= username; Kind =:= user; Kind =:= clientid; Kind =:= client ->
    text(Name, "name");
who({Op, List}) when (Op =:= 'and' orelse Op =:= 'or'), is_list(List) -> lists:append([who(W) || W <- List]);
who({ipaddr, Cidr}) -> text(Cidr, "address");
who(Other) -> [fmt("bad client condition ~p", [Other])].

action(A) when A =:= publish; A =:= subscribe; A =:= all -> [];
action({A, Opts}) when (A =:= publish orelse A =:= subscribe orelse A =:= all), is_list(Opts) -> [];
action(Other) -> [fmt("bad action ~p", [Other])].

topic({eq, T}) -> text(T, "topic");
topic(T) ->
    case text(T, "topic") of
        [] ->
            Vars = re:run(T, "\\$\\{([^}]*)\\}", [global, {capture, all_but_first, list}]),
            [fmt("placeholder ${~s} is not one of username, clientid", [V])
             || {match, Found} <- [Vars], [V] <- Found, V =/= "username", V =/= "clientid"];
        Problems -> Problems
    end.

text(T, What) ->
    case io_lib:printable_unicode_list(T) of
        true -> [];
        false -> [fmt("~s is not a string: ~p", [What, T])]
    end.

%% The username pattern of the rule that lets devices publish their own status.
device_pattern(Rules) ->
    [Re || {allow, {username, {re, Re}}, publish, Topics} <- Rules, lists:member("appliance/${username}/status", Topics)].

cases(_, []) -> [];
cases([Re], Cases) ->
    [fmt("device pattern ~s ~s", [if Want -> "refuses"; true -> "takes" end, Name])
     || [Sign | Name] <- Cases,
        Want <- [Sign =:= $+],
        (re:run(Name, Re) =/= nomatch) =/= Want];
cases(Found, _) -> [fmt("expected one device rule, found ~p", [length(Found)])].

fmt(Format, Args) -> lists:flatten(io_lib:format(Format, Args)).
