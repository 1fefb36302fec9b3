"""Drive the real discord.py offline: a local stand-in for Discord's REST API, and helpers that
inject Discord-shaped interactions into a logged-in (but never connected) `commands.Bot`.

    async with FakeDiscord() as fake:
        bot = await start_bot(fake, setup=lambda b: b.add_cog(MyCog(b)))
        result = await slash(bot, "ping", user_id=fake.owner_id, guild_id=fake.guild_id)
        assert result.final["content"] == "pong"
        await stop_bot(bot)

How it works (discord.py 2.7): `discord.http.Route.BASE` points at the stand-in, `bot.login()`
fetches `/users/@me` and `/oauth2/applications/@me` from it (and runs `setup_hook`); there is no
gateway, so interactions are fed to `bot._connection.parsers["INTERACTION_CREATE"]`. Every task
spawned while handling an interaction is tracked (a task factory plus a context variable, so
children of children are tracked too) and awaited, except long-lived ones (view timeouts,
`delete_after` timers, `tasks.loop` loops), which `stop_bot` cancels.

The stand-in behaves like Discord where cogs commonly trip: the callback must arrive within
`ack_deadline` seconds (else 404 Unknown interaction, 10062), a second callback is 400 (40060),
webhook routes of an unacknowledged interaction are 404 (10015), the first follow-up after a
"thinking" defer replaces the loading message (keeping the defer's ephemeral flag), and a button
can only be pressed if the bot's stored message still carries it, enabled.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import datetime as dt
import enum
import inspect
import json
import logging
import os
import re
import time
import weakref
from collections.abc import Awaitable, Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

import discord
from aiohttp import WSMsgType, web
from discord import app_commands
from discord.ext import commands
from discord.http import Route

__all__ = [
    "EPHEMERAL",
    "LOADING",
    "FakeDiscord",
    "InteractionResult",
    "LoggedError",
    "Recorded",
    "autocomplete",
    "custom_ids",
    "find_component",
    "inject",
    "press",
    "slash",
    "start_bot",
    "stop_bot",
    "submit_modal",
]

API_PREFIX = "/api/v10"
EPHEMERAL = 1 << 6  # message flag
LOADING = 1 << 7  # message flag of a "thinking" deferred response
DEFAULT_APP_PERMISSIONS = (
    discord.Permissions(
        view_channel=True,
        send_messages=True,
        send_messages_in_threads=True,
        embed_links=True,
        attach_files=True,
        read_message_history=True,
        add_reactions=True,
        use_external_emojis=True,
    ).value
)
_JSON = "application/json"  # exactly: discord.py's json_or_text() compares the header verbatim


# -- records -----------------------------------------------------------------------------------


@dataclass
class Recorded:
    """One HTTP request discord.py made to the stand-in."""

    method: str
    path: str  # without the /api/v10 prefix, e.g. "/interactions/1/tok/callback"
    query: dict[str, str]
    json: Any  # the JSON body, or the multipart payload_json; None for no body
    at: float = 0.0  # time.monotonic() on arrival
    files: list[tuple[str, bytes]] = field(default_factory=list)  # (filename, content)
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 0  # what the stand-in answered
    response: Any = None  # the JSON it answered with
    matched: bool = False  # False: no route of the stand-in knows this request
    interaction_id: int | None = None  # set on /interactions/{id}/{token}/callback
    token: str | None = None  # the interaction token of callback and webhook routes

    def __repr__(self) -> str:
        return f"<Recorded {self.method} {self.path} -> {self.status}>"


class LoggedError(Exception):
    """An ERROR logged by discord.py without an exception attached."""


@dataclass
class _Interaction:
    id: int
    token: str
    type: int
    user: dict[str, Any]
    guild_id: int | None
    channel_id: int
    injected_at: float
    name: str | None = None
    component_message_id: int | None = None  # the message a component/modal was on
    acked_at: float | None = None
    callback: dict[str, Any] | None = None
    original_id: int | None = None
    message_ids: list[int] = field(default_factory=list)


class _Override:
    def __init__(self, method: str | None, path_contains: str, status: int, body: Any,
                 times: int | None) -> None:
        self.method = method
        self.path_contains = path_contains
        self.status = status
        self.body = body
        self.times = times


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


# -- the stand-in ------------------------------------------------------------------------------


class FakeDiscord:
    """Discord's REST API, on 127.0.0.1 and a random port, recording every request.

    Knobs: `delay` (seconds before answering any request), `ack_deadline` (seconds within which an
    interaction callback must arrive; None disables), `override()` (make a route fail).
    """

    def __init__(self, *, delay: float = 0.0, ack_deadline: float | None = 3.0) -> None:
        self.delay = delay
        self.ack_deadline = ack_deadline
        self._last_id = 0
        self.bot_user_id: int = self.new_id()
        self.app_id: int = self.bot_user_id  # as on Discord: the bot user's id is the app's id
        self.owner_id: int = self.new_id()
        self.guild_id: int = self.new_id()  # a default guild for tests to use
        self.channel_id: int = self.new_id()  # its default text channel
        self.bot_name = "gitrelease-test"
        # What GET /gateway/bot says of the bot's daily session starts.
        self.session_start_limit: dict[str, int] = {
            "total": 1000, "remaining": 997, "reset_after": 3_600_000, "max_concurrency": 1}
        self.requests: list[Recorded] = []
        self.messages: dict[int, dict[str, Any]] = {}  # current state, by id
        self.deleted: dict[int, dict[str, Any]] = {}
        self.users: dict[int, dict[str, Any]] = {}  # overrides of generated user payloads
        self.channels: dict[int, dict[str, Any]] = {}  # known channels (others are synthesised)
        self.commands: dict[int | None, list[dict[str, Any]]] = {}  # last sync, by guild id
        self.interactions: dict[str, _Interaction] = {}  # by token
        self.errors: list[BaseException] = []  # everything discord.py logged as ERROR
        # Qualified names (or their last parts) of coroutines an interaction may start that run
        # for good, e.g. "UpdateManager._schedule_loop": never awaited by slash()/press(),
        # cancelled by stop_bot().
        self.background: set[str] = set()
        self.sockets: list[web.WebSocketResponse] = []  # gateway connections
        self.gateway_frames: list[dict[str, Any]] = []  # what bots sent on them
        self._gateway_seq = 0
        self._command_ids: dict[tuple[str, int | None], int] = {}
        self._dm_channels: dict[int, int] = {}  # user id -> DM channel id
        self._overrides: list[_Override] = []
        self._seq = 0
        self._touched: dict[int, int] = {}  # message id -> sequence of its last create/edit
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self.channels[self.channel_id] = self._text_channel(self.channel_id, self.guild_id)
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Awaitable[Any]]]] = []
        self._build_routes()

    # lifecycle

    async def start(self) -> FakeDiscord:
        if self._runner is not None:
            return self
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        for socket in self.sockets:
            await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def gateway_url(self) -> str:
        """A minimal gateway (HELLO, READY after IDENTIFY, heartbeat ACKs, and whatever
        `dispatch` sends), for a bot started for real with `start()` in another process."""
        if self.port is None:
            raise RuntimeError("FakeDiscord is not started")
        return f"ws://127.0.0.1:{self.port}/gateway"

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self.sockets.append(socket)
        await socket.send_json({"op": 10, "d": {"heartbeat_interval": 41250}})
        async for message in socket:
            if message.type is not WSMsgType.TEXT:
                break
            frame = json.loads(message.data)
            self.gateway_frames.append(frame)
            if frame.get("op") == 1:  # heartbeat
                await socket.send_json({"op": 11})
            elif frame.get("op") == 2:  # IDENTIFY
                await self.dispatch("READY", {
                    "v": 10, "user": self.user_payload(self.bot_user_id), "guilds": [],
                    "session_id": f"session-{self.new_id()}",
                    "resume_gateway_url": self.gateway_url, "shard": [0, 1],
                    "application": {"id": str(self.app_id), "flags": 0}})
        return socket

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a gateway event to the newest connection."""
        self._gateway_seq += 1
        await self.sockets[-1].send_json({"op": 0, "t": event, "s": self._gateway_seq,
                                          "d": data})

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("FakeDiscord is not started")
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    # ids and payloads

    def new_id(self) -> int:
        """A fresh snowflake: time-based like Discord's, strictly increasing."""
        self._last_id = max(self._last_id + 1, discord.utils.time_snowflake(discord.utils.utcnow()))
        return self._last_id

    def user_payload(self, user_id: int) -> dict[str, Any]:
        if user_id in self.users:
            return copy.deepcopy(self.users[user_id])
        if user_id == self.bot_user_id:
            return {"id": str(user_id), "username": self.bot_name, "discriminator": "0",
                    "global_name": None, "avatar": None, "bot": True, "public_flags": 0}
        name = "owner" if user_id == self.owner_id else f"user{user_id % 100000}"
        return {"id": str(user_id), "username": name, "discriminator": "0",
                "global_name": name.title(), "avatar": None, "public_flags": 0}

    def member_payload(self, user_id: int, *, permissions: int = 0,
                       roles: tuple[int, ...] | list[int] = ()) -> dict[str, Any]:
        return {"user": self.user_payload(user_id), "roles": [str(r) for r in roles],
                "joined_at": "2024-01-01T00:00:00+00:00", "permissions": str(permissions),
                "flags": 0, "deaf": False, "mute": False, "nick": None, "avatar": None,
                "pending": False, "premium_since": None, "communication_disabled_until": None}

    def _text_channel(self, channel_id: int, guild_id: int,
                      name: str = "general") -> dict[str, Any]:
        return {"id": str(channel_id), "type": 0, "guild_id": str(guild_id), "name": name,
                "position": 0, "permission_overwrites": [], "nsfw": False, "parent_id": None,
                "topic": None, "last_message_id": None, "rate_limit_per_user": 0, "flags": 0}

    def add_channel(self, *, name: str = "channel", guild_id: int | None = None,
                    channel_id: int | None = None, type: int = 0) -> int:
        """Register a guild channel (GET /channels/{id} answers it); returns its id."""
        channel_id = channel_id or self.new_id()
        payload = self._text_channel(channel_id, guild_id or self.guild_id, name)
        payload["type"] = type
        self.channels[channel_id] = payload
        return channel_id

    def default_channel_id(self, guild_id: int) -> int:
        """The channel interactions in `guild_id` come from unless told otherwise."""
        if guild_id == self.guild_id:
            return self.channel_id
        for channel_id, channel in self.channels.items():
            if channel.get("guild_id") == str(guild_id) and channel.get("name") == "general":
                return channel_id
        return self.add_channel(name="general", guild_id=guild_id)

    def dm_channel_id(self, user_id: int) -> int:
        if user_id not in self._dm_channels:
            self._dm_channels[user_id] = self.new_id()
        return self._dm_channels[user_id]

    def channel_payload(self, channel_id: int) -> dict[str, Any]:
        if channel_id in self.channels:
            return copy.deepcopy(self.channels[channel_id])
        for user_id, dm_id in self._dm_channels.items():
            if dm_id == channel_id:
                return {"id": str(dm_id), "type": 1, "last_message_id": None, "flags": 0,
                        "recipients": [self.user_payload(user_id)]}
        return self._text_channel(channel_id, self.guild_id, f"channel-{channel_id % 10000}")

    def command_id(self, name: str, guild_id: int | None = None) -> int:
        key = (name, guild_id)
        if key not in self._command_ids:
            self._command_ids[key] = self.new_id()
        return self._command_ids[key]

    def app_info_payload(self) -> dict[str, Any]:
        return {"id": str(self.app_id), "name": self.bot_name, "icon": None, "description": "",
                "summary": "", "rpc_origins": [], "bot_public": False,
                "bot_require_code_grant": False, "owner": self.user_payload(self.owner_id),
                "team": None, "verify_key": "0" * 64, "flags": 0, "tags": [],
                "bot": self.user_payload(self.bot_user_id), "interactions_endpoint_url": None,
                "redirect_uris": [], "approximate_guild_count": 1,
                "integration_types_config": {"0": {}}}

    # queries

    def calls(self, method: str | None = None, path_contains: str | None = None) -> list[Recorded]:
        return [r for r in self.requests
                if (method is None or r.method == method.upper())
                and (path_contains is None or path_contains in r.path)]

    @property
    def unknown(self) -> list[Recorded]:
        """Requests no route of the stand-in knows (answered 404 Unknown)."""
        return [r for r in self.requests if not r.matched]

    def message(self, message_id: int | str) -> dict[str, Any]:
        """The current state of a message the bot sent (KeyError if it never did)."""
        return self.messages[int(message_id)]

    def last_message(self) -> dict[str, Any] | None:
        """The message most recently created or edited by any route, in its current state."""
        live = [(seq, mid) for mid, seq in self._touched.items() if mid in self.messages]
        return self.messages[max(live)[1]] if live else None

    def messages_for(self, interaction_token: str) -> list[dict[str, Any]]:
        """The messages an interaction created (original response, then follow-ups), as they
        are now; a component interaction's update of its message is included."""
        state = self.interactions.get(interaction_token)
        if state is None:
            return []
        return [self.messages[m] for m in state.message_ids if m in self.messages]

    def final_for(self, interaction_token: str) -> dict[str, Any] | None:
        """The message this interaction created or edited last, in its current state."""
        state = self.interactions.get(interaction_token)
        if state is None:
            return None
        ids = [m for m in state.message_ids if m in self.messages]
        if not ids:
            return None
        return self.messages[max(ids, key=lambda m: self._touched.get(m, 0))]

    async def wait_for_request(self, method: str | None = None, path_contains: str | None = None,
                               *, timeout: float = 5.0, start: int = 0) -> Recorded:
        """Wait until a matching request (at index >= start of `requests`) has arrived."""
        deadline = time.monotonic() + timeout
        while True:
            for rec in self.requests[start:]:
                if (method is None or rec.method == method.upper()) and (
                        path_contains is None or path_contains in rec.path) and rec.status:
                    return rec
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method or '*'} request containing {path_contains!r}")
            await asyncio.sleep(0.005)

    def override(self, method: str | None, path_contains: str, *, status: int = 404,
                 body: Any = None, times: int | None = 1) -> None:
        """Answer the next `times` matching requests (None: all) with `status` and `body`
        (default: a Discord error JSON)."""
        if body is None:
            body = {"message": f"{status} (override)", "code": 0}
        self._overrides.append(_Override(method and method.upper(), path_contains, status, body,
                                         times))

    def register_interaction(self, payload: dict[str, Any]) -> _Interaction:
        """Make the callback and webhook routes know an interaction about to be injected."""
        user = payload.get("member", {}).get("user") or payload.get("user") or {}
        message = payload.get("message")
        guild_id = payload.get("guild_id")
        state = _Interaction(
            id=int(payload["id"]), token=payload["token"], type=int(payload["type"]), user=user,
            guild_id=int(guild_id) if guild_id else None,
            channel_id=int(payload.get("channel_id") or payload.get("channel", {}).get("id") or 0),
            injected_at=time.monotonic(), name=(payload.get("data") or {}).get("name"),
            component_message_id=int(message["id"]) if message else None)
        if message is not None:
            state.original_id = int(message["id"])
        self.interactions[state.token] = state
        return state

    # messages

    def _touch(self, message_id: int) -> None:
        self._seq += 1
        self._touched[message_id] = self._seq

    def _attachments(self, data: dict[str, Any], files: list[tuple[str, bytes]],
                     old: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if "attachments" not in data:
            # a message created with files but no attachments list
            return [self._attachment(name, content) for name, content in files] or old
        result = []
        by_id = {a["id"]: a for a in old}
        for index, entry in enumerate(data["attachments"] or []):
            if str(entry.get("id")) in by_id:
                result.append(by_id[str(entry["id"])])
                continue
            content = files[index][1] if index < len(files) else b""
            result.append(self._attachment(entry.get("filename", f"file{index}"), content))
        return result

    def _attachment(self, filename: str, content: bytes) -> dict[str, Any]:
        attachment_id = self.new_id()
        url = f"https://cdn.example.invalid/attachments/{attachment_id}/{filename}"
        return {"id": str(attachment_id), "filename": filename, "size": len(content),
                "url": url, "proxy_url": url}

    def _create_message(self, channel_id: int, data: dict[str, Any], *,
                        files: list[tuple[str, bytes]] | None = None, flags: int = 0,
                        interaction: _Interaction | None = None, webhook: bool = False,
                        message_type: int = 0) -> dict[str, Any]:
        message_id = self.new_id()
        channel = self.channel_payload(channel_id) if channel_id else {}
        message: dict[str, Any] = {
            "id": str(message_id), "channel_id": str(channel_id), "type": message_type,
            "content": data.get("content") or "", "embeds": data.get("embeds") or [],
            "components": data.get("components") or [],
            "attachments": self._attachments(data, files or [], []),
            "author": self.user_payload(self.bot_user_id), "mentions": [], "mention_roles": [],
            "mention_everyone": False, "pinned": False, "tts": bool(data.get("tts")),
            "timestamp": _now_iso(), "edited_timestamp": None,
            "flags": int(data.get("flags") or 0) | flags, "application_id": str(self.app_id),
        }
        guild_id = interaction.guild_id if interaction else channel.get("guild_id")
        if guild_id:
            message["guild_id"] = str(guild_id)
        if webhook:
            message["webhook_id"] = str(self.app_id)
        if "message_reference" in data:
            message["message_reference"] = data["message_reference"]
        if interaction is not None:
            metadata: dict[str, Any] = {
                "id": str(interaction.id), "type": interaction.type, "user": interaction.user,
                "authorizing_integration_owners": (
                    {"0": str(interaction.guild_id)} if interaction.guild_id
                    else {"1": interaction.user.get("id", "0")}),
            }
            if interaction.name and interaction.type == 2:
                metadata["name"] = interaction.name
            if interaction.component_message_id is not None:
                metadata["interacted_message_id"] = str(interaction.component_message_id)
            if interaction.original_id is not None and interaction.original_id != message_id:
                metadata["original_response_message_id"] = str(interaction.original_id)
            message["interaction_metadata"] = metadata
            interaction.message_ids.append(message_id)
        self.messages[message_id] = message
        self._touch(message_id)
        return message

    def _edit_message(self, message: dict[str, Any], data: dict[str, Any],
                      files: list[tuple[str, bytes]] | None = None) -> dict[str, Any]:
        for key in ("content", "embeds", "components", "poll"):
            if key in data:
                message[key] = data[key] if data[key] is not None else ("" if key == "content"
                                                                        else [])
        if "attachments" in data or files:
            message["attachments"] = self._attachments(data, files or [], message["attachments"])
        flags = int(message.get("flags") or 0) & ~LOADING
        if data.get("flags") is not None:
            # only SUPPRESS_EMBEDS and friends can change; ephemerality is fixed at creation
            flags = (flags & EPHEMERAL) | (int(data["flags"]) & ~(EPHEMERAL | LOADING))
        message["flags"] = flags
        message["edited_timestamp"] = _now_iso()
        self._touch(int(message["id"]))
        return message

    def _delete_message(self, message_id: int) -> bool:
        message = self.messages.pop(message_id, None)
        if message is None:
            return False
        self.deleted[message_id] = message
        return True

    # HTTP

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/gateway":
            return await self._gateway(request)
        arrived = time.monotonic()
        path = request.path
        if path.startswith(API_PREFIX):
            path = path[len(API_PREFIX):]
        files: list[tuple[str, bytes]] = []
        body: Any = None
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                if part.name == "payload_json":
                    body = json.loads(await part.text())
                else:
                    files.append((part.filename or part.name or "file", bytes(await part.read())))
        elif request.can_read_body:
            raw = await request.read()
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
        rec = Recorded(method=request.method, path=path, query=dict(request.query), json=body,
                       at=arrived, files=files, headers=dict(request.headers))
        self.requests.append(rec)
        if self.delay:
            await asyncio.sleep(self.delay)

        status, answer = 404, {"message": "Unknown", "code": 0}
        override = next((o for o in self._overrides
                         if (o.method is None or o.method == rec.method)
                         and o.path_contains in rec.path), None)
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match and method == rec.method:
                rec.matched = True
                params = match.groupdict()
                rec.token = params.get("token")
                if "interaction_id" in params:
                    rec.interaction_id = int(params["interaction_id"])
                if override is None:
                    status, answer = await handler(rec, **params)
                break
        if override is not None:
            status, answer = override.status, copy.deepcopy(override.body)
            if override.times is not None:
                override.times -= 1
                if override.times <= 0:
                    self._overrides.remove(override)
        rec.status, rec.response = status, answer
        if status == 204 or answer is None:
            return web.Response(status=204)
        return web.Response(status=status, body=json.dumps(answer).encode(),
                            headers={"Content-Type": _JSON})

    def _build_routes(self) -> None:
        snow = r"[0-9]+"
        tok = r"[^/]+"
        table: list[tuple[str, str, Callable[..., Awaitable[Any]]]] = [
            ("GET", r"/users/@me", self._users_me),
            ("GET", r"/oauth2/applications/@me", self._app_info),
            ("GET", r"/gateway/bot", self._gateway_bot),
            ("GET", rf"/users/(?P<user_id>{snow})", self._get_user),
            ("POST", r"/users/@me/channels", self._create_dm),
            ("POST", rf"/interactions/(?P<interaction_id>{snow})/(?P<token>{tok})/callback",
             self._callback),
            ("GET", rf"/webhooks/(?P<app>{snow})/(?P<token>{tok})/messages/@original",
             self._get_original),
            ("PATCH", rf"/webhooks/(?P<app>{snow})/(?P<token>{tok})/messages/@original",
             self._edit_original),
            ("DELETE", rf"/webhooks/(?P<app>{snow})/(?P<token>{tok})/messages/@original",
             self._delete_original),
            ("POST", rf"/webhooks/(?P<app>{snow})/(?P<token>{tok})", self._followup),
            ("GET", rf"/webhooks/(?P<app>{snow})/(?P<token>{tok})/messages/(?P<mid>{snow})",
             self._get_followup),
            ("PATCH", rf"/webhooks/(?P<app>{snow})/(?P<token>{tok})/messages/(?P<mid>{snow})",
             self._edit_followup),
            ("DELETE", rf"/webhooks/(?P<app>{snow})/(?P<token>{tok})/messages/(?P<mid>{snow})",
             self._delete_followup),
            ("GET", rf"/channels/(?P<cid>{snow})", self._get_channel),
            ("POST", rf"/channels/(?P<cid>{snow})/messages", self._channel_send),
            ("GET", rf"/channels/(?P<cid>{snow})/messages/(?P<mid>{snow})", self._channel_get),
            ("PATCH", rf"/channels/(?P<cid>{snow})/messages/(?P<mid>{snow})", self._channel_edit),
            ("DELETE", rf"/channels/(?P<cid>{snow})/messages/(?P<mid>{snow})",
             self._channel_delete),
            ("PUT", rf"/applications/(?P<app>{snow})/commands", self._sync),
            ("PUT", rf"/applications/(?P<app>{snow})/guilds/(?P<guild>{snow})/commands",
             self._sync),
            ("GET", rf"/applications/(?P<app>{snow})/commands", self._get_commands),
            ("GET", rf"/applications/(?P<app>{snow})/guilds/(?P<guild>{snow})/commands",
             self._get_commands),
        ]
        self._routes = [(m, re.compile(p), h) for m, p, h in table]

    # route handlers: each returns (status, JSON body or None)

    @staticmethod
    def _error(status: int, message: str, code: int) -> tuple[int, dict[str, Any]]:
        return status, {"message": message, "code": code}

    async def _users_me(self, rec: Recorded) -> tuple[int, Any]:
        me = self.user_payload(self.bot_user_id)
        me.update(verified=True, mfa_enabled=False, flags=0, locale="en-US")
        return 200, me

    async def _app_info(self, rec: Recorded) -> tuple[int, Any]:
        return 200, self.app_info_payload()

    async def _gateway_bot(self, rec: Recorded) -> tuple[int, Any]:
        return 200, {"url": "wss://gateway.discord.gg", "shards": 1,
                     "session_start_limit": dict(self.session_start_limit)}

    async def _get_user(self, rec: Recorded, user_id: str) -> tuple[int, Any]:
        return 200, self.user_payload(int(user_id))

    async def _create_dm(self, rec: Recorded) -> tuple[int, Any]:
        user_id = int((rec.json or {}).get("recipient_id", 0))
        return 200, self.channel_payload(self.dm_channel_id(user_id))

    def _unknown_interaction(self) -> tuple[int, dict[str, Any]]:
        return self._error(404, "Unknown interaction", 10062)

    async def _callback(self, rec: Recorded, interaction_id: str, token: str) -> tuple[int, Any]:
        state = self.interactions.get(token)
        if state is None or state.id != int(interaction_id):
            return self._unknown_interaction()
        if state.acked_at is not None:
            return self._error(400, "Interaction has already been acknowledged.", 40060)
        if self.ack_deadline is not None and rec.at - state.injected_at > self.ack_deadline:
            return self._unknown_interaction()
        body = rec.json or {}
        kind = int(body.get("type", 0))
        data = body.get("data") or {}
        state.acked_at, state.callback = rec.at, body
        info: dict[str, Any] = {"id": str(state.id), "type": state.type}
        resource: dict[str, Any] = {"type": kind}
        if kind in (4, 5):  # a new message; 5 is the "thinking" one
            flags = int(data.get("flags") or 0)
            if kind == 5:
                flags |= LOADING
                data = {}
            message = self._create_message(state.channel_id, data, files=rec.files, flags=flags,
                                           interaction=state, webhook=True,
                                           message_type=20 if state.type == 2 else 0)
            state.original_id = int(message["id"])
            info.update(response_message_id=message["id"], response_message_loading=kind == 5,
                        response_message_ephemeral=bool(message["flags"] & EPHEMERAL))
            resource["message"] = message
        elif kind in (6, 7):  # (deferred) update of the component's message
            message = self.messages.get(state.component_message_id or 0)
            if message is None:
                return self._error(404, "Unknown Message", 10008)
            if kind == 7:
                self._edit_message(message, data, rec.files)
                if int(message["id"]) not in state.message_ids:
                    state.message_ids.append(int(message["id"]))
                resource["message"] = message
            info.update(response_message_id=message["id"], response_message_loading=False,
                        response_message_ephemeral=bool(message["flags"] & EPHEMERAL))
        elif kind == 12:
            resource["activity_instance"] = {"id": str(self.new_id())}
        return 200, {"interaction": info, "resource": resource}

    def _webhook_state(self, app: str, token: str) -> _Interaction | None:
        state = self.interactions.get(token)
        if int(app) != self.app_id or state is None or state.acked_at is None:
            return None
        return state

    def _unknown_webhook(self) -> tuple[int, dict[str, Any]]:
        return self._error(404, "Unknown Webhook", 10015)

    def _original(self, state: _Interaction) -> dict[str, Any] | None:
        return self.messages.get(state.original_id or 0)

    async def _get_original(self, rec: Recorded, app: str, token: str) -> tuple[int, Any]:
        state = self._webhook_state(app, token)
        if state is None:
            return self._unknown_webhook()
        message = self._original(state)
        if message is None:
            return self._error(404, "Unknown Message", 10008)
        return 200, message

    async def _edit_original(self, rec: Recorded, app: str, token: str) -> tuple[int, Any]:
        state = self._webhook_state(app, token)
        if state is None:
            return self._unknown_webhook()
        message = self._original(state)
        if message is None:
            return self._error(404, "Unknown Message", 10008)
        if int(message["id"]) not in state.message_ids:
            state.message_ids.append(int(message["id"]))
        return 200, self._edit_message(message, rec.json or {}, rec.files)

    async def _delete_original(self, rec: Recorded, app: str, token: str) -> tuple[int, Any]:
        state = self._webhook_state(app, token)
        if state is None:
            return self._unknown_webhook()
        if not self._delete_message(state.original_id or 0):
            return self._error(404, "Unknown Message", 10008)
        return 204, None

    async def _followup(self, rec: Recorded, app: str, token: str) -> tuple[int, Any]:
        state = self._webhook_state(app, token)
        if state is None:
            return self._unknown_webhook()
        data = rec.json or {}
        original = self._original(state)
        if original is not None and original["flags"] & LOADING:
            # Discord: the first follow-up after a "thinking" defer replaces the loading message
            # and keeps the defer's ephemerality, whatever the follow-up's flags say.
            data = {k: v for k, v in data.items() if k != "flags"}
            data.setdefault("content", "")
            return 200, self._edit_message(original, data, rec.files)
        message = self._create_message(state.channel_id, data, files=rec.files,
                                       interaction=state, webhook=True)
        return 200, message

    def _followup_message(self, app: str, token: str,
                          mid: str) -> tuple[_Interaction | None, dict[str, Any] | None]:
        state = self._webhook_state(app, token)
        if state is None:
            return None, None
        message = self.messages.get(int(mid))
        if message is None or int(mid) not in [*state.message_ids, state.original_id]:
            return state, None
        return state, message

    async def _get_followup(self, rec: Recorded, app: str, token: str,
                            mid: str) -> tuple[int, Any]:
        state, message = self._followup_message(app, token, mid)
        if state is None:
            return self._unknown_webhook()
        if message is None:
            return self._error(404, "Unknown Message", 10008)
        return 200, message

    async def _edit_followup(self, rec: Recorded, app: str, token: str,
                             mid: str) -> tuple[int, Any]:
        state, message = self._followup_message(app, token, mid)
        if state is None:
            return self._unknown_webhook()
        if message is None:
            return self._error(404, "Unknown Message", 10008)
        return 200, self._edit_message(message, rec.json or {}, rec.files)

    async def _delete_followup(self, rec: Recorded, app: str, token: str,
                               mid: str) -> tuple[int, Any]:
        state, message = self._followup_message(app, token, mid)
        if state is None:
            return self._unknown_webhook()
        if message is None:
            return self._error(404, "Unknown Message", 10008)
        self._delete_message(int(mid))
        return 204, None

    async def _get_channel(self, rec: Recorded, cid: str) -> tuple[int, Any]:
        return 200, self.channel_payload(int(cid))

    async def _channel_send(self, rec: Recorded, cid: str) -> tuple[int, Any]:
        message = self._create_message(int(cid), rec.json or {}, files=rec.files,
                                       message_type=19 if "message_reference" in (rec.json or {})
                                       else 0)
        return 200, message

    def _channel_message(self, cid: str, mid: str) -> dict[str, Any] | None:
        message = self.messages.get(int(mid))
        if message is None or message["channel_id"] != cid:
            return None
        return message

    async def _channel_get(self, rec: Recorded, cid: str, mid: str) -> tuple[int, Any]:
        message = self._channel_message(cid, mid)
        if message is None:
            return self._error(404, "Unknown Message", 10008)
        return 200, message

    async def _channel_edit(self, rec: Recorded, cid: str, mid: str) -> tuple[int, Any]:
        message = self._channel_message(cid, mid)
        if message is None:
            return self._error(404, "Unknown Message", 10008)
        return 200, self._edit_message(message, rec.json or {}, rec.files)

    async def _channel_delete(self, rec: Recorded, cid: str, mid: str) -> tuple[int, Any]:
        if self._channel_message(cid, mid) is None:
            return self._error(404, "Unknown Message", 10008)
        self._delete_message(int(mid))
        return 204, None

    async def _sync(self, rec: Recorded, app: str, guild: str | None = None) -> tuple[int, Any]:
        guild_id = int(guild) if guild else None
        echoed = []
        for command in rec.json or []:
            item = copy.deepcopy(command)
            item.update(id=str(self.command_id(command["name"], guild_id)),
                        application_id=str(self.app_id), version=str(self.new_id()))
            if guild_id is not None:
                item["guild_id"] = str(guild_id)
            echoed.append(item)
        self.commands[guild_id] = echoed
        return 200, echoed

    async def _get_commands(self, rec: Recorded, app: str,
                            guild: str | None = None) -> tuple[int, Any]:
        return 200, self.commands.get(int(guild) if guild else None, [])


# -- bot lifecycle -----------------------------------------------------------------------------


class _Tracker:
    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[Any]] = []
        self.errors: list[BaseException] = []
        self.reaped: set[int] = set()  # ids of finished tasks whose exception was collected


_CURRENT: contextvars.ContextVar[_Tracker | None] = contextvars.ContextVar(
    "discord_stub_tracker", default=None)


class _ErrorCapture(logging.Handler):
    def __init__(self, fake: FakeDiscord) -> None:
        super().__init__(logging.ERROR)
        self.fake = fake

    def emit(self, record: logging.LogRecord) -> None:
        error: BaseException
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
        else:
            error = LoggedError(record.getMessage())
        if isinstance(error, app_commands.CommandInvokeError | commands.CommandInvokeError):
            error = error.original  # what the command itself raised
        self.fake.errors.append(error)
        tracker = _CURRENT.get()
        if tracker is not None:
            tracker.errors.append(error)


@dataclass
class _Session:
    fake: FakeDiscord
    loop: asyncio.AbstractEventLoop
    previous_base: str
    previous_factory: Any
    handler: _ErrorCapture
    tasks: weakref.WeakSet[asyncio.Task[Any]] = field(default_factory=weakref.WeakSet)


_SESSIONS: weakref.WeakKeyDictionary[commands.Bot, _Session] = weakref.WeakKeyDictionary()


def _session(bot: commands.Bot) -> _Session:
    try:
        return _SESSIONS[bot]
    except KeyError:
        raise RuntimeError("this bot was not started with discord_stub.start_bot") from None


def _qualname(task: asyncio.Task[Any]) -> str:
    return getattr(task.get_coro(), "__qualname__", "") or ""


def _is_background(task: asyncio.Task[Any], extra: Collection[str] = ()) -> bool:
    """Long-lived tasks an interaction may start that waiting for would only time out:
    view/modal timeout timers, delete_after timers, tasks.loop loops, aiohttp internals, and
    coroutines whose qualified name ends with, or tasks whose name is, one of `extra`
    (FakeDiscord.background)."""
    qualname = _qualname(task)
    if any(qualname == name or qualname.endswith("." + name) or task.get_name() == name
           for name in extra):
        return True
    code = getattr(task.get_coro(), "cr_code", None)
    filename = code.co_filename if code is not None else ""
    if f"{os.sep}aiohttp{os.sep}" in filename:
        return True
    if f"{os.sep}discord{os.sep}" not in filename:
        return False
    return (qualname.endswith("__timeout_task_impl") or qualname.endswith(".inner_call")
            or qualname == "Loop._loop")


async def start_bot(fake: FakeDiscord, *,
                    setup: Callable[[commands.Bot], Any] | None = None,
                    intents: discord.Intents | None = None,
                    bot: commands.Bot | None = None) -> commands.Bot:
    """Log a bot in against `fake` (no gateway) and run `setup(bot)` (sync or async).

    `intents` defaults to `discord.Intents.none()`; pass `bot` to use your own (sub)class.
    Only one started bot at a time: Route.BASE is global.
    """
    for other in list(_SESSIONS.values()):
        if other.loop is asyncio.get_running_loop():
            raise RuntimeError("another bot is already started; stop_bot() it first")
    await fake.start()
    loop = asyncio.get_running_loop()
    previous_factory = loop.get_task_factory()
    handler = _ErrorCapture(fake)
    if bot is None:
        bot = commands.Bot(command_prefix=commands.when_mentioned,
                           intents=intents if intents is not None else discord.Intents.none())
    session = _Session(fake=fake, loop=loop, previous_base=Route.BASE,
                       previous_factory=previous_factory, handler=handler)

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        if previous_factory is not None:
            task = previous_factory(loop, coro, **kwargs)
        else:
            task = asyncio.Task(coro, loop=loop, **kwargs)
        tracker = _CURRENT.get()
        if tracker is not None:
            tracker.tasks.append(task)
            session.tasks.add(task)
        return task

    _SESSIONS[bot] = session
    loop.set_task_factory(factory)
    logging.getLogger("discord").addHandler(handler)
    Route.BASE = fake.base_url
    try:
        await bot.login("stub-token")
        if setup is not None:
            outcome = setup(bot)
            if inspect.isawaitable(outcome):
                await outcome
    except BaseException:
        await stop_bot(bot)
        raise
    return bot


async def stop_bot(bot: commands.Bot) -> None:
    """Close the bot (unloads extensions and cogs), stop its views, cancel leftover tasks and
    restore Route.BASE and the loop's task factory. The FakeDiscord stays up."""
    session = _SESSIONS.get(bot)
    try:
        if not bot.is_closed():
            await bot.close()
    finally:
        store = getattr(bot._connection, "_view_store", None)
        if store is not None:
            views = {item.view for entries in store._views.values() for item in entries.values()
                     if item.view is not None}
            views.update(store._synced_message_views.values())
            for view in views:
                view.stop()
        if session is not None:
            leftovers = [t for t in session.tasks if not t.done()]
            for task in leftovers:
                task.cancel()
            if leftovers:
                await asyncio.gather(*leftovers, return_exceptions=True)
            Route.BASE = session.previous_base
            session.loop.set_task_factory(session.previous_factory)
            logging.getLogger("discord").removeHandler(session.handler)
            _SESSIONS.pop(bot, None)


# -- interactions ------------------------------------------------------------------------------


class InteractionResult:
    """What one injected interaction did. Properties read the stand-in's records live."""

    def __init__(self, fake: FakeDiscord, state: _Interaction, tracker: _Tracker,
                 payload: dict[str, Any]) -> None:
        self.fake = fake
        self.payload = payload
        self.id: int = state.id
        self.token: str = state.token
        self._state = state
        self._tracker = tracker
        self.done = False

    def __repr__(self) -> str:
        return (f"<InteractionResult id={self.id} type={self._state.type} "
                f"response_type={self.response_type} done={self.done}>")

    @property
    def requests(self) -> list[Recorded]:
        """The requests made for this interaction (its callback and webhook routes)."""
        return [r for r in self.fake.requests if r.token == self.token]

    @property
    def first_response_at(self) -> float | None:
        """Seconds from injection until the callback request arrived (None: none yet)."""
        for rec in self.requests:
            if rec.interaction_id == self.id:
                return rec.at - self._state.injected_at
        return None

    @property
    def callback(self) -> dict[str, Any] | None:
        """The accepted callback body: {"type": ..., "data": {...}}."""
        return self._state.callback

    @property
    def response_type(self) -> int | None:
        return None if self._state.callback is None else int(self._state.callback["type"])

    @property
    def final(self) -> dict[str, Any] | None:
        """The message this interaction created or edited last (original response, a follow-up,
        or for a component the message it updated), in its current state."""
        return self.fake.final_for(self.token)

    @property
    def content(self) -> str | None:
        final = self.final
        return None if final is None else final["content"]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.fake.messages_for(self.token)

    @property
    def ephemeral(self) -> bool:
        """Flag 64 on the response: the callback's flags for a new (or deferred) message,
        else the flags of the final message."""
        callback = self._state.callback
        if callback is not None and int(callback["type"]) in (4, 5):
            return bool(int((callback.get("data") or {}).get("flags") or 0) & EPHEMERAL)
        final = self.final
        return bool(final and int(final.get("flags") or 0) & EPHEMERAL)

    @property
    def choices(self) -> list[dict[str, Any]] | None:
        """Autocomplete choices (callback type 8)."""
        if self.response_type != 8:
            return None
        return list((self._state.callback or {}).get("data", {}).get("choices", []))

    @property
    def modal(self) -> dict[str, Any] | None:
        """The modal sent in answer (callback type 9)."""
        if self.response_type != 9:
            return None
        return (self._state.callback or {}).get("data")

    @property
    def errors(self) -> list[BaseException]:
        """Exceptions discord.py logged while handling this interaction (command errors without
        a handler, unwrapped from CommandInvokeError; view callback errors) and exceptions of
        its tasks."""
        return list(self._tracker.errors)

    async def acked(self, timeout: float = 5.0) -> float:
        """Wait for the callback request; return `first_response_at`."""
        deadline = time.monotonic() + timeout
        while (at := self.first_response_at) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"interaction {self.id} was not acknowledged in {timeout}s")
            await asyncio.sleep(0.002)
        return at

    async def wait(self, timeout: float = 30.0) -> InteractionResult:
        """Await every task the interaction spawned (and the tasks those spawned)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            pending = [t for t in self._tracker.tasks
                       if not t.done() and not _is_background(t, self.fake.background)]
            if not pending:
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                names = ", ".join(f"{t.get_name()} ({_qualname(t)})" for t in pending)
                raise TimeoutError(f"interaction {self.id} still running after {timeout}s: "
                                   f"{names}; add long-lived coroutines to fake.background")
            await asyncio.wait(pending, timeout=remaining)
        for task in self._tracker.tasks:
            if task.done() and not task.cancelled() and id(task) not in self._tracker.reaped:
                self._tracker.reaped.add(id(task))
                if (error := task.exception()) is not None:
                    self._tracker.errors.append(error)
        self.done = True
        return self


async def inject(bot: commands.Bot, payload: dict[str, Any], *, wait: bool = True,
                 timeout: float = 30.0) -> InteractionResult:
    """Feed an INTERACTION_CREATE payload to the bot as the gateway would."""
    fake = _session(bot).fake
    tracker = _Tracker()
    state = fake.register_interaction(payload)
    reset = _CURRENT.set(tracker)
    try:
        state.injected_at = time.monotonic()
        bot._connection.parsers["INTERACTION_CREATE"](payload)
    finally:
        _CURRENT.reset(reset)
    result = InteractionResult(fake, state, tracker, payload)
    if wait:
        await result.wait(timeout)
    return result


def _base_payload(fake: FakeDiscord, kind: int, *, user_id: int, guild_id: int | None,
                  permissions: int, locale: str, channel_id: int | None,
                  roles: tuple[int, ...] | list[int], app_permissions: int | None,
                  ) -> dict[str, Any]:
    interaction_id = fake.new_id()
    payload: dict[str, Any] = {
        "id": str(interaction_id), "application_id": str(fake.app_id), "type": kind,
        "token": f"token-{interaction_id}", "version": 1, "locale": locale,
        "app_permissions": str(DEFAULT_APP_PERMISSIONS if app_permissions is None
                               else app_permissions),
        "entitlements": [], "attachment_size_limit": 10 * 1024 * 1024,
    }
    if guild_id is not None:
        channel_id = channel_id or fake.default_channel_id(guild_id)
        channel = fake.channel_payload(channel_id)
        channel["permissions"] = str(permissions)
        payload.update(
            guild_id=str(guild_id), guild={"id": str(guild_id), "locale": "en-US", "features": []},
            guild_locale="en-US", member=fake.member_payload(user_id, permissions=permissions,
                                                             roles=roles),
            authorizing_integration_owners={"0": str(guild_id)}, context=0)
    else:
        channel_id = channel_id or fake.dm_channel_id(user_id)
        channel = fake.channel_payload(channel_id)
        payload.update(user=fake.user_payload(user_id),
                       authorizing_integration_owners={"0": "0"}, context=1)
    payload.update(channel_id=str(channel_id), channel=channel)
    return payload


def slash_payload(fake: FakeDiscord, name: str, *, user_id: int, guild_id: int | None,
                  permissions: int = 0, locale: str = "en-US") -> dict[str, Any]:
    """An INTERACTION_CREATE payload of a top-level slash command without options, for a bot
    that runs in another process (no tree at hand): send it with `fake.dispatch`."""
    payload = _base_payload(fake, 2, user_id=user_id, guild_id=guild_id,
                            permissions=permissions, locale=locale, channel_id=None, roles=(),
                            app_permissions=None)
    payload["data"] = {"id": str(fake.command_id(name, None)), "name": name, "type": 1,
                       "options": []}
    return payload


def _find_command(bot: commands.Bot, name: str, guild_id: int | None,
                  subcommand: str | None) -> tuple[app_commands.Command[Any, ..., Any],
                                                   int | None, list[str]]:
    tree = bot.tree
    command: Any = None
    registered_in: int | None = None
    if guild_id is not None:
        command = tree.get_command(name, guild=discord.Object(guild_id))
        registered_in = guild_id if command is not None else None
    if command is None:
        command = tree.get_command(name)
    if command is None:
        known = sorted({c.name for c in tree.walk_commands()}
                       | {c.name for g in tree._guild_commands.values() for c in g.values()})
        raise LookupError(f"no slash command /{name}; the tree has {known}")
    path = subcommand.split() if subcommand else []
    for part in path:
        child = command.get_command(part) if isinstance(command, app_commands.Group) else None
        if child is None:
            raise LookupError(f"/{command.qualified_name} has no subcommand {part!r}")
        command = child
    if isinstance(command, app_commands.Group):
        subs = [c.name for c in command.commands]
        raise LookupError(f"/{command.qualified_name} is a group: pass subcommand= one of {subs}")
    return command, registered_in, path


def _raw_value(value: Any) -> Any:
    if isinstance(value, app_commands.Choice):
        return value.value
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _option(fake: FakeDiscord, param: app_commands.Parameter, value: Any,
            resolved: dict[str, dict[str, Any]], guild_id: int | None, *,
            focused: bool = False) -> dict[str, Any]:
    kind = param.type.value
    value = _raw_value(value)
    option: dict[str, Any] = {"name": param.display_name, "type": kind}
    if focused:
        option.update(value=value if isinstance(value, str) else str(value), focused=True)
        return option
    if kind == 3:
        option["value"] = str(value)
    elif kind == 4:
        option["value"] = int(value)
    elif kind == 5:
        option["value"] = bool(value)
    elif kind == 10:
        option["value"] = float(value)
    elif kind in (6, 9):  # user, mentionable (as a user)
        user_id = int(getattr(value, "id", value))
        option["value"] = str(user_id)
        resolved.setdefault("users", {})[str(user_id)] = fake.user_payload(user_id)
        if guild_id is not None:
            member = fake.member_payload(user_id)
            member.pop("user")
            resolved.setdefault("members", {})[str(user_id)] = member
    elif kind == 7:  # channel
        channel_id = int(getattr(value, "id", value))
        option["value"] = str(channel_id)
        channel = fake.channel_payload(channel_id)
        channel["permissions"] = str(DEFAULT_APP_PERMISSIONS)
        resolved.setdefault("channels", {})[str(channel_id)] = channel
    elif kind == 8:  # role
        role_id = int(getattr(value, "id", value))
        option["value"] = str(role_id)
        resolved.setdefault("roles", {})[str(role_id)] = {
            "id": str(role_id), "name": f"role-{role_id % 10000}", "color": 0, "hoist": False,
            "position": 1, "permissions": "0", "managed": False, "mentionable": False,
            "flags": 0}
    elif kind == 11:  # attachment: a filename or an attachment dict
        attachment = value if isinstance(value, dict) else fake._attachment(str(value), b"")
        option["value"] = str(attachment["id"])
        resolved.setdefault("attachments", {})[str(attachment["id"])] = attachment
    else:
        option["value"] = value
    return option


def _command_data(bot: commands.Bot, fake: FakeDiscord, name: str, options: dict[str, Any] | None,
                  guild_id: int | None, subcommand: str | None,
                  focused: str | None = None) -> dict[str, Any]:
    command, registered_in, path = _find_command(bot, name, guild_id, subcommand)
    params = {p.name: p for p in command.parameters}
    params.update({p.display_name: p for p in command.parameters})
    resolved: dict[str, dict[str, Any]] = {}
    leaf = []
    for key, value in (options or {}).items():
        if key not in params:
            raise LookupError(f"/{command.qualified_name} has no parameter {key!r}; "
                              f"it has {[p.display_name for p in command.parameters]}")
        leaf.append(_option(fake, params[key], value, resolved, guild_id,
                            focused=params[key].name == focused or key == focused))
    if focused is not None and not any(o.get("focused") for o in leaf):
        if focused not in params:
            raise LookupError(f"/{command.qualified_name} has no parameter {focused!r}")
        leaf.append(_option(fake, params[focused], "", resolved, guild_id, focused=True))
    nested: list[dict[str, Any]] = leaf
    for depth, part in reversed(list(enumerate(path))):
        # the innermost name is a subcommand (1); a name above it is a subcommand group (2)
        nested = [{"name": part, "type": 1 if depth == len(path) - 1 else 2, "options": nested}]
    data: dict[str, Any] = {"id": str(fake.command_id(name, registered_in)), "name": name,
                            "type": 1, "options": nested}
    if registered_in is not None:
        data["guild_id"] = str(registered_in)
    if resolved:
        data["resolved"] = resolved
    return data


async def slash(bot: commands.Bot, name: str, options: dict[str, Any] | None = None, *,
                user_id: int, guild_id: int | None, permissions: int = 0,
                locale: str = "en-US", subcommand: str | None = None, timeout: float = 30.0,
                wait: bool = True, channel_id: int | None = None,
                roles: tuple[int, ...] | list[int] = (),
                app_permissions: int | None = None) -> InteractionResult:
    """Invoke /name [subcommand] with `options` ({parameter name: value}; Choice and Enum values
    are unwrapped, users/channels/roles may be ids or objects) as `user_id`, in `guild_id` (None:
    in the bot's DM). `permissions` is the member's permission bitfield (Administrator = 8)."""
    fake = _session(bot).fake
    payload = _base_payload(fake, 2, user_id=user_id, guild_id=guild_id,
                            permissions=permissions, locale=locale, channel_id=channel_id,
                            roles=roles, app_permissions=app_permissions)
    payload["data"] = _command_data(bot, fake, name, options, guild_id, subcommand)
    return await inject(bot, payload, wait=wait, timeout=timeout)


async def autocomplete(bot: commands.Bot, name: str, options: dict[str, Any] | None,
                       focused: str, *, user_id: int, guild_id: int | None,
                       permissions: int = 0, subcommand: str | None = None,
                       locale: str = "en-US", timeout: float = 30.0) -> list[dict[str, Any]]:
    """Type into parameter `focused` of /name: `options` holds what is typed so far (the focused
    one's partial text included, else ""). Returns the choices the bot answered
    ([{"name": ..., "value": ...}]); raises if it answered none."""
    fake = _session(bot).fake
    payload = _base_payload(fake, 4, user_id=user_id, guild_id=guild_id,
                            permissions=permissions, locale=locale, channel_id=None, roles=(),
                            app_permissions=None)
    payload["data"] = _command_data(bot, fake, name, options, guild_id, subcommand,
                                    focused=focused)
    result = await inject(bot, payload, timeout=timeout)
    if result.choices is None:
        raise AssertionError(f"/{name} answered no autocomplete choices for {focused!r}: "
                             f"{result.callback!r}, errors {result.errors!r}")
    return result.choices


def _walk_components(components: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for component in components or []:
        yield component
        yield from _walk_components(component.get("components") or [])
        for key in ("accessory", "component"):
            if isinstance(component.get(key), dict):
                yield from _walk_components([component[key]])


def custom_ids(message: dict[str, Any]) -> list[str]:
    """The custom_ids of a message's buttons and selects, in order."""
    return [c["custom_id"] for c in _walk_components(message.get("components") or [])
            if "custom_id" in c]


def find_component(message: dict[str, Any], custom_id: str) -> dict[str, Any] | None:
    return next((c for c in _walk_components(message.get("components") or [])
                 if c.get("custom_id") == custom_id), None)


def _resolve_message(fake: FakeDiscord, message: Any) -> dict[str, Any]:
    if isinstance(message, dict):
        message_id = int(message["id"])
    else:
        message_id = int(getattr(message, "id", message))
    if message_id in fake.deleted:
        raise LookupError(f"message {message_id} was deleted")
    if message_id not in fake.messages:
        raise LookupError(f"the bot never sent message {message_id}")
    return fake.messages[message_id]


async def press(bot: commands.Bot, message: Any, custom_id: str, *, user_id: int,
                guild_id: int | None, permissions: int = 0, values: list[str] | None = None,
                locale: str = "en-US", timeout: float = 30.0, wait: bool = True,
                roles: tuple[int, ...] | list[int] = ()) -> InteractionResult:
    """Press button `custom_id` (or pick `values` in a select) on a message the bot sent:
    `message` is a message dict from the stand-in, a message id, or a discord.Message. As on
    Discord, the component must be on the message as it is now, and enabled."""
    fake = _session(bot).fake
    current = _resolve_message(fake, message)
    component = find_component(current, custom_id)
    if component is None:
        raise LookupError(f"message {current['id']} has no component {custom_id!r}; "
                          f"it has {custom_ids(current)}")
    if component.get("disabled"):
        raise LookupError(f"component {custom_id!r} of message {current['id']} is disabled")
    payload = _base_payload(fake, 3, user_id=user_id, guild_id=guild_id,
                            permissions=permissions, locale=locale,
                            channel_id=int(current["channel_id"]), roles=roles,
                            app_permissions=None)
    data: dict[str, Any] = {"custom_id": custom_id, "component_type": int(component["type"])}
    if values is not None or int(component["type"]) in (3, 5, 6, 7, 8):
        data["values"] = list(values or [])
    payload["data"] = data
    payload["message"] = copy.deepcopy(current)
    return await inject(bot, payload, wait=wait, timeout=timeout)


async def submit_modal(bot: commands.Bot, custom_id: str, values: dict[str, str], *,
                       user_id: int, guild_id: int | None, permissions: int = 0,
                       message: Any = None, locale: str = "en-US", timeout: float = 30.0,
                       wait: bool = True) -> InteractionResult:
    """Submit modal `custom_id` (the modal's custom_id) with text inputs {custom_id: value}."""
    fake = _session(bot).fake
    payload = _base_payload(fake, 5, user_id=user_id, guild_id=guild_id,
                            permissions=permissions, locale=locale, channel_id=None, roles=(),
                            app_permissions=None)
    payload["data"] = {"custom_id": custom_id, "components": [
        {"type": 1, "components": [{"type": 4, "custom_id": key, "value": value}]}
        for key, value in values.items()]}
    if message is not None:
        payload["message"] = copy.deepcopy(_resolve_message(fake, message))
    return await inject(bot, payload, wait=wait, timeout=timeout)
