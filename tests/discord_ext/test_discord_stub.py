"""The offline Discord harness, proven on a throw-away cog: the real discord.py handles every
interaction, and the stand-in records each HTTP request it makes."""

from __future__ import annotations

import asyncio
from typing import Literal

import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.discord_stub import (
    EPHEMERAL,
    FakeDiscord,
    autocomplete,
    custom_ids,
    press,
    slash,
    start_bot,
    stop_bot,
    submit_modal,
)

ADMIN = discord.Permissions(administrator=True).value
VERSIONS = ["1.0.0", "1.1.0", "1.2.0", "2.0.0"]


class Confirm(discord.ui.View):
    """Two buttons only the invoker may press; times out into disabled buttons."""

    def __init__(self, invoker_id: int, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.invoker_id = invoker_id
        self.message: discord.InteractionMessage | discord.WebhookMessage | None = None

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id != self.invoker_id:
            await interaction.response.send_message("Only the invoker can answer.",
                                                    ephemeral=True)
            return False
        return True

    @discord.ui.button(label="Approve", style=discord.ButtonStyle.success, custom_id="demo:yes")
    async def approve(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.stop()
        await interaction.response.edit_message(content="Approved.", view=None)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary, custom_id="demo:no")
    async def cancel(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.stop()
        await interaction.response.edit_message(content="Cancelled.", view=None)

    async def on_timeout(self) -> None:
        for item in self.children:
            item.disabled = True  # type: ignore[attr-defined]
        if self.message is not None:
            await self.message.edit(content="Timed out.", view=self)


class Rename(discord.ui.Modal, title="Rename"):
    name = discord.ui.TextInput(label="New name", custom_id="demo:name")

    def __init__(self) -> None:
        super().__init__(custom_id="demo:rename")

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"Renamed to {self.name.value}.", ephemeral=True)


class Demo(commands.Cog):
    view_timeout = 180.0

    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        self.notify_channel_id = 0
        self.slow = asyncio.Event()

    @app_commands.command(description="Defer, then edit twice.")
    async def ping(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await interaction.edit_original_response(content="pong 1")
        await interaction.edit_original_response(content="pong 2")

    @app_commands.command(description="An embed.")
    async def status(self, interaction: discord.Interaction, count: int = 1,
                     verbose: bool = False, ratio: float = 0.5) -> None:
        embed = discord.Embed(title="Status", description=f"{count} {verbose} {ratio}")
        embed.add_field(name="version", value="1.2.0")
        await interaction.response.send_message(embed=embed)

    @app_commands.command(description="Ask for confirmation.")
    async def confirm(self, interaction: discord.Interaction,
                      mode: Literal["respond", "defer", "followup"] = "respond") -> None:
        view = Confirm(interaction.user.id, self.view_timeout)
        if mode == "respond":
            await interaction.response.send_message("Proceed?", view=view)
            view.message = await interaction.original_response()
        elif mode == "defer":
            await interaction.response.defer(thinking=True)
            view.message = await interaction.edit_original_response(content="Proceed?", view=view)
        else:
            await interaction.response.defer(thinking=True)
            await interaction.followup.send("Working...")  # replaces the "thinking" message
            view.message = await interaction.followup.send("Proceed?", view=view, wait=True)

    @app_commands.command(description="Pick a version.")
    async def pick(self, interaction: discord.Interaction, version: str) -> None:
        await interaction.response.send_message(f"Picked {version}.")

    @pick.autocomplete("version")
    async def pick_version(self, interaction: discord.Interaction,
                           current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=f"v{v}", value=v) for v in VERSIONS
                if v.startswith(current)][:25]

    @app_commands.command(description="Owner only.")
    async def whoami(self, interaction: discord.Interaction) -> None:
        owner = await self.bot.is_owner(interaction.user)
        await interaction.response.send_message("owner" if owner else "not owner",
                                                ephemeral=not owner)

    @app_commands.command(description="Administrators only.")
    @app_commands.checks.has_permissions(administrator=True)
    async def admin(self, interaction: discord.Interaction) -> None:
        where = "DM" if interaction.guild is None else f"guild {interaction.guild_id}"
        await interaction.response.send_message(f"admin in {where}")

    @admin.error
    async def admin_error(self, interaction: discord.Interaction,
                          error: app_commands.AppCommandError) -> None:
        await interaction.response.send_message("You need Administrator.", ephemeral=True)

    @app_commands.command(description="Tell a channel.")
    async def notify(self, interaction: discord.Interaction, text: str) -> None:
        await interaction.response.defer(thinking=True)
        channel = await self.bot.fetch_channel(self.notify_channel_id)
        assert isinstance(channel, discord.TextChannel)
        await channel.send(f"Released: {text}")
        await self.bot.get_partial_messageable(self.notify_channel_id).send("again")
        await interaction.followup.send(f"Told #{channel.name}.")

    @app_commands.command(description="Acknowledge fast, finish slowly.")
    async def slow(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        await self.slow.wait()
        await interaction.edit_original_response(content="done")

    @app_commands.command(description="Calls a route the stand-in does not know.")
    async def member(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        assert interaction.guild is not None
        await interaction.guild.fetch_member(interaction.user.id)

    @app_commands.command(description="Opens a modal.")
    async def rename(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(Rename())

    @app_commands.command(description="Starts work that outlives the command.")
    async def spawn(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("started", ephemeral=True)
        self.forever_task = asyncio.create_task(self.forever())
        asyncio.create_task(self.announce_later())  # noqa: RUF006 - the harness awaits it

    async def forever(self) -> None:
        await asyncio.Event().wait()

    async def announce_later(self) -> None:
        await asyncio.sleep(0.01)
        await asyncio.create_task(  # a grandchild task, still tracked
            self.bot.get_partial_messageable(self.notify_channel_id).send("announced"))

    release = app_commands.Group(name="release", description="Releases.")

    @release.command(name="create", description="Create a release.")
    @app_commands.rename(bump="kind")
    async def release_create(self, interaction: discord.Interaction, bump: str,
                             dry_run: bool = False) -> None:
        await interaction.response.send_message(f"release {bump} dry_run={dry_run}")


@pytest.fixture
async def fake():
    async with FakeDiscord() as fake:
        yield fake


@pytest.fixture
async def bot(fake):
    async def setup(bot: commands.Bot) -> None:
        await bot.add_cog(Demo(bot))

    bot = await start_bot(fake, setup=setup)
    yield bot
    await stop_bot(bot)


def demo(bot: commands.Bot) -> Demo:
    cog = bot.get_cog("Demo")
    assert isinstance(cog, Demo)
    return cog


async def test_login_uses_the_stand_in_and_no_gateway(fake, bot):
    assert bot.user is not None and bot.user.id == fake.bot_user_id
    assert bot.application_id == fake.app_id
    assert [(r.method, r.path) for r in fake.requests] == [
        ("GET", "/users/@me"), ("GET", "/oauth2/applications/@me")]
    assert bot.ws is None and not bot.is_ready()
    route_base = discord.http.Route.BASE
    assert route_base == fake.base_url


async def test_stop_bot_restores_route_base(fake):
    before = discord.http.Route.BASE
    bot = await start_bot(fake)
    during = discord.http.Route.BASE
    assert during == fake.base_url != before
    await stop_bot(bot)
    after = discord.http.Route.BASE
    assert after == before
    assert asyncio.get_running_loop().get_task_factory() is None


async def test_ping_defers_ephemerally_then_edits_twice(fake, bot):
    result = await slash(bot, "ping", user_id=111, guild_id=fake.guild_id)

    assert result.first_response_at is not None and result.first_response_at < 0.5
    callback, first_edit, second_edit = result.requests
    assert (callback.method, callback.path) == (
        "POST", f"/interactions/{result.id}/{result.token}/callback")
    assert callback.query == {"with_response": "1"}
    assert callback.json == {"type": 5, "data": {"flags": EPHEMERAL}}
    assert callback.headers["Content-Type"] == "application/json"
    for edit, text in ((first_edit, "pong 1"), (second_edit, "pong 2")):
        assert (edit.method, edit.path) == (
            "PATCH", f"/webhooks/{fake.app_id}/{result.token}/messages/@original")
        assert edit.json["content"] == text
    assert result.ephemeral
    assert result.final is not None and result.final["content"] == "pong 2"
    assert result.final["flags"] == EPHEMERAL  # still ephemeral, no longer loading
    assert fake.last_message() == result.final
    assert fake.messages_for(result.token) == [result.final]
    assert not result.errors


async def test_embed_reply_with_typed_options(fake, bot):
    result = await slash(bot, "status", {"count": 3, "verbose": True, "ratio": 2},
                         user_id=111, guild_id=fake.guild_id)

    options = result.payload["data"]["options"]
    assert [(o["name"], o["type"], o["value"]) for o in options] == [
        ("count", 4, 3), ("verbose", 5, True), ("ratio", 10, 2.0)]
    (callback,) = result.requests
    assert callback.json["type"] == 4
    (embed,) = callback.json["data"]["embeds"]
    assert embed["title"] == "Status" and embed["description"] == "3 True 2.0"
    assert embed["fields"] == [{"name": "version", "value": "1.2.0", "inline": True}]
    assert not result.ephemeral
    assert result.final is not None and result.final["embeds"] == [embed]


async def test_subcommand_with_renamed_parameter(fake, bot):
    result = await slash(bot, "release", {"bump": "minor", "dry_run": True}, user_id=111,
                         guild_id=fake.guild_id, subcommand="create")

    (sub,) = result.payload["data"]["options"]
    assert (sub["name"], sub["type"]) == ("create", 1)
    assert [o["name"] for o in sub["options"]] == ["kind", "dry_run"]
    assert result.content == "release minor dry_run=True"


@pytest.mark.parametrize("mode", ["respond", "defer", "followup"])
async def test_invoker_presses_a_button(fake, bot, mode):
    invoker, other = 111, 222
    result = await slash(bot, "confirm", {"mode": mode}, user_id=invoker,
                         guild_id=fake.guild_id)
    asked = result.final
    assert asked is not None and asked["content"] == "Proceed?"
    assert custom_ids(asked) == ["demo:yes", "demo:no"]

    refused = await press(bot, asked, "demo:yes", user_id=other, guild_id=fake.guild_id)
    assert refused.callback is not None and refused.callback["type"] == 4
    assert refused.callback["data"]["content"] == "Only the invoker can answer."
    assert refused.callback["data"]["flags"] == EPHEMERAL
    assert refused.ephemeral and not refused.errors
    assert fake.message(asked["id"])["content"] == "Proceed?"  # untouched

    pressed = await press(bot, asked, "demo:yes", user_id=invoker, guild_id=fake.guild_id)
    assert pressed.callback is not None and pressed.callback["type"] == 7
    assert pressed.callback["data"]["content"] == "Approved."
    assert pressed.callback["data"]["components"] == []
    assert pressed.first_response_at is not None and pressed.first_response_at < 0.5
    assert pressed.final is not None and pressed.final["id"] == asked["id"]
    assert pressed.final["content"] == "Approved." and pressed.final["components"] == []
    assert not pressed.errors
    with pytest.raises(LookupError, match="no component"):
        await press(bot, asked, "demo:no", user_id=invoker, guild_id=fake.guild_id)


async def test_followup_after_thinking_replaces_the_loading_message(fake, bot):
    result = await slash(bot, "confirm", {"mode": "followup"}, user_id=111,
                         guild_id=fake.guild_id)

    posts = [r for r in result.requests if r.method == "POST" and r.path.startswith("/webhooks")]
    assert [p.json["content"] for p in posts] == ["Working...", "Proceed?"]
    assert all(p.query["wait"] == "1" for p in posts)
    original, question = result.messages
    assert original["content"] == "Working..." and not original["flags"]
    assert question["interaction_metadata"]["original_response_message_id"] == original["id"]


async def test_view_times_out_into_disabled_buttons(fake, bot):
    demo(bot).view_timeout = 0.2
    result = await slash(bot, "confirm", user_id=111, guild_id=fake.guild_id)
    start = len(fake.requests)

    edit = await fake.wait_for_request("PATCH", "/messages/@original", start=start, timeout=3)
    assert edit.token == result.token
    message = fake.last_message()
    assert message is not None and message["content"] == "Timed out."
    assert all(button["disabled"] for row in message["components"]
               for button in row["components"])
    with pytest.raises(LookupError, match="disabled"):
        await press(bot, message, "demo:yes", user_id=111, guild_id=fake.guild_id)


async def test_autocomplete_choices(fake, bot):
    choices = await autocomplete(bot, "pick", {"version": "1."}, "version", user_id=111,
                                 guild_id=fake.guild_id)
    assert choices == [{"name": "v1.0.0", "value": "1.0.0"}, {"name": "v1.1.0", "value": "1.1.0"},
                       {"name": "v1.2.0", "value": "1.2.0"}]
    everything = await autocomplete(bot, "pick", {}, "version", user_id=111, guild_id=None)
    assert len(everything) == len(VERSIONS)
    (callback,) = fake.calls("POST", "/callback")[-1:]
    assert callback.json["type"] == 8


async def test_is_owner(fake, bot):
    mine = await slash(bot, "whoami", user_id=fake.owner_id, guild_id=fake.guild_id)
    theirs = await slash(bot, "whoami", user_id=fake.owner_id + 1, guild_id=fake.guild_id)
    assert (mine.content, mine.ephemeral) == ("owner", False)
    assert (theirs.content, theirs.ephemeral) == ("not owner", True)
    assert await bot.is_owner(discord.Object(fake.owner_id))  # type: ignore[arg-type]


async def test_member_permissions_and_dms(fake, bot):
    admin = await slash(bot, "admin", user_id=111, guild_id=fake.guild_id, permissions=ADMIN)
    assert admin.content == f"admin in guild {fake.guild_id}"
    refused = await slash(bot, "admin", user_id=111, guild_id=fake.guild_id,
                          permissions=discord.Permissions(manage_guild=True).value)
    assert (refused.content, refused.ephemeral) == ("You need Administrator.", True)
    in_dm = await slash(bot, "admin", user_id=111, guild_id=None)
    assert in_dm.content == "You need Administrator."  # no member permissions in a DM
    assert "member" not in in_dm.payload and in_dm.payload["user"]["id"] == "111"


async def test_channel_notifications(fake, bot):
    demo(bot).notify_channel_id = fake.add_channel(name="releases")
    result = await slash(bot, "notify", {"text": "1.2.0"}, user_id=111, guild_id=fake.guild_id)

    assert [(r.method, r.path) for r in fake.calls(path_contains="/channels/")] == [
        ("GET", f"/channels/{demo(bot).notify_channel_id}"),
        ("POST", f"/channels/{demo(bot).notify_channel_id}/messages"),
        ("POST", f"/channels/{demo(bot).notify_channel_id}/messages")]
    first, second = (fake.message(r.response["id"]) for r in fake.calls("POST", "/messages"))
    assert (first["content"], second["content"]) == ("Released: 1.2.0", "again")
    assert result.content == "Told #releases."
    assert fake.last_message() == result.final


async def test_ack_is_fast_while_the_work_is_slow(fake, bot):
    result = await slash(bot, "slow", user_id=111, guild_id=fake.guild_id, wait=False)
    assert await result.acked() < 0.5
    assert result.response_type == 5 and not result.done
    demo(bot).slow.set()
    await result.wait(timeout=5)
    assert result.content == "done"


async def test_delay_knob_and_late_acknowledgement(fake, bot):
    fake.delay = 0.05
    result = await slash(bot, "ping", user_id=111, guild_id=fake.guild_id)
    assert result.content == "pong 2"
    fake.delay, fake.ack_deadline = 0.0, 0.0  # every callback is now too late
    late = await slash(bot, "ping", user_id=111, guild_id=fake.guild_id)
    assert late.requests[0].status == 404 and late.final is None
    assert any(isinstance(e, discord.NotFound) for e in late.errors)


async def test_unknown_routes_are_recorded(fake, bot):
    result = await slash(bot, "member", user_id=111, guild_id=fake.guild_id)
    (unknown,) = fake.unknown
    assert (unknown.method, unknown.path) == ("GET", f"/guilds/{fake.guild_id}/members/111")
    assert unknown.status == 404 and unknown.response == {"message": "Unknown", "code": 0}
    assert any(isinstance(e, discord.NotFound) for e in result.errors)


async def test_spawned_tasks_are_awaited_unless_background(fake):
    bot = await start_bot(fake, setup=lambda b: b.add_cog(Demo(b)))
    demo(bot).notify_channel_id = fake.channel_id
    fake.background.add("Demo.forever")
    result = await slash(bot, "spawn", user_id=111, guild_id=fake.guild_id, timeout=5)
    assert result.done and result.content == "started"
    assert fake.last_message() is not None and fake.last_message()["content"] == "announced"
    forever = demo(bot).forever_task
    assert not forever.done()
    await stop_bot(bot)
    assert forever.cancelled()


async def test_modal_round_trip(fake, bot):
    opened = await slash(bot, "rename", user_id=111, guild_id=fake.guild_id)
    assert opened.modal is not None and opened.modal["custom_id"] == "demo:rename"
    submitted = await submit_modal(bot, "demo:rename", {"demo:name": "bob"}, user_id=111,
                                   guild_id=fake.guild_id)
    assert (submitted.content, submitted.ephemeral) == ("Renamed to bob.", True)


async def test_tree_sync_reaches_the_put_routes(fake, bot):
    synced = await bot.tree.sync()
    (put,) = fake.calls("PUT")
    assert put.path == f"/applications/{fake.app_id}/commands"
    assert {c["name"] for c in put.json} == {c.name for c in synced}
    assert "release" in {c.name for c in synced}

    guild = discord.Object(fake.guild_id)
    bot.tree.copy_global_to(guild=guild)
    in_guild = await bot.tree.sync(guild=guild)
    assert fake.calls("PUT")[-1].path == (
        f"/applications/{fake.app_id}/guilds/{fake.guild_id}/commands")
    assert all(c.guild_id == fake.guild_id for c in in_guild)
    # a guild copy is now what an interaction in that guild reaches
    result = await slash(bot, "ping", user_id=111, guild_id=fake.guild_id)
    assert result.payload["data"]["guild_id"] == str(fake.guild_id)
    assert result.content == "pong 2"


async def test_command_tree_payloads(bot):
    payloads = {c["name"]: c for c in (c.to_dict(bot.tree) for c in bot.tree.get_commands())}
    assert {"ping", "status", "confirm", "pick", "whoami", "release"} <= set(payloads)
    (mode,) = payloads["confirm"]["options"]
    assert mode["type"] == 3 and [c["value"] for c in mode["choices"]] == [
        "respond", "defer", "followup"]
    (create,) = payloads["release"]["options"]
    assert create["type"] == 1 and [o["name"] for o in create["options"]] == ["kind", "dry_run"]
    assert payloads["pick"]["options"][0]["autocomplete"] is True
