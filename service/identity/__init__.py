"""Who is who and who holds which key: staff accounts, organisations, memberships and key custody.

The layer below sign-in and the organisation pages (docs/key-custody.md): ``models`` (the account, the
organisation and its key epochs, memberships, member and case key grants), ``repository`` (their queries),
``grants`` (the member grants of an organisation key), ``recovery`` (the custodians' shares) and
``custody`` (``KeyCustody``: first key, rotation, removal, destruction of unneeded epochs). It imports no
feature but the audit log: ``auth`` builds the subject of a request on it, ``organisations`` (pages,
endpoints) and ``cases`` sit above both.
"""
