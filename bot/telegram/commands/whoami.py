"""/whoami: the ids a new admin needs (user id for `[telegram] admins`, chat id for the
channel or a digest), answered in any chat, to anyone."""

from __future__ import annotations

from bot.telegram.context import Request
from bot.telegram.i18n import N_, gettext_for

KINDS = {"private": N_("private chat"), "group": N_("group"), "supergroup": N_("supergroup"),
         "channel": N_("channel")}


async def cmd_whoami(req: Request) -> str:
    _ = gettext_for(req.language)
    user = "—" if req.user_id is None else f"<code>{req.user_id}</code>"
    lines = [
        _("your user id: {user}").format(user=user),
        _("this chat: <code>{chat}</code> ({kind})").format(
            chat=req.chat.id, kind=_(KINDS.get(req.chat.type, req.chat.type))),
    ]
    if req.user_id is not None:
        lines.append(_("admin here: yes") if req.is_admin else
                     _("To make this user an admin, add the id to [telegram] admins."))
    return "\n".join(lines)
