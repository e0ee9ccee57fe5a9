"""WebSocket consumers of the reading side: the live leaderboard.

The leaderboard is public (it drives the booth's big screen), so the socket needs no login;
it only ever sends what GET /api/leaderboard/ sends, never marks or consensus.
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from annotations.booth.leaderboard import LEADERBOARD_GROUP, leaderboard_message


class LeaderboardConsumer(AsyncJsonWebsocketConsumer):
    """Sends the leaderboard on connect and again after every saved read."""

    async def connect(self) -> None:
        await self.channel_layer.group_add(LEADERBOARD_GROUP, self.channel_name)
        await self.accept()
        await self.send_json(await database_sync_to_async(leaderboard_message)())

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(LEADERBOARD_GROUP, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        # Clients only listen; a "refresh" asks for the current board (e.g. after a reconnect).
        if isinstance(content, dict) and content.get("type") == "refresh":
            await self.send_json(await database_sync_to_async(leaderboard_message)())

    async def leaderboard_update(self, event: dict) -> None:
        await self.send_json(event["message"])
