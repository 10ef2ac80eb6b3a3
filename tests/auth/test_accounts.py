"""Staff accounts in the service: keys, passwords, TOTP at rest, recovery codes, memberships, reset."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select

from service.auth import sessions
from service.auth.account_keys import initial_password_context, user_key_context
from service.auth.errors import AccountError, PasswordRejected
from service.auth.models import RecoveryCode, WebSession
from service.auth.service import AccountService
from service.auth.subject import Subject
from service.crypto import (
    Argon2Params,
    Context,
    DecryptionError,
    PrivateKey,
    PublicKey,
    new_data_key,
    open_with_password_and_pepper,
    totp_code,
    unwrap_key,
    wrap_key,
)
from service.errors import NotFound
from service.identity import repository as organisations
from service.identity.grants import member_epoch_keys
from service.identity.models import MemberKeyGrant, Membership, MembershipRole, Organisation, StaffUser
from service.runtime import Runtime
from tests.support.staff import PASSWORD, WEAK, Clock, MakeStaff, Staff

Subjects = Callable[[Staff], Subject]


def user_row(runtime: Runtime, user_id: str) -> StaffUser:
    with runtime.sessions() as db:
        user = db.get(StaffUser, user_id)
        assert user is not None
        return user


def org(runtime: Runtime, slug: str) -> Organisation:
    with runtime.sessions() as db:
        organisation = organisations.by_slug(db, slug)
        assert organisation is not None
        return organisation


def test_production_argon2_parameters_are_rfc_9106(runtime: Runtime) -> None:
    """Given the service as the application builds it, keys are sealed with 64 MiB, t=3, p=4."""
    assert runtime.accounts.params == Argon2Params(memory_kib=65536, iterations=3, lanes=4)
    with runtime.sessions() as db:
        created = runtime.accounts.create_user(
            db, "echt@example.org", "Echt", password=PASSWORD, must_change_password=False
        )
        db.commit()
    sealed = created.user.sealed_private_key
    assert sealed is not None
    assert sealed[0] == 2
    assert Argon2Params.decode(sealed[1:13]) == Argon2Params(65536, 3, 4)


def test_a_new_account_is_stored_without_readable_secrets(runtime: Runtime, accounts: AccountService) -> None:
    with runtime.sessions() as db:
        created = accounts.create_user(db, "  Beraterin@Example.ORG ", "Anna Berger")
        db.commit()
    user = user_row(runtime, created.user.id)
    assert user.email == "beraterin@example.org"
    assert user.must_change_password is True
    assert user.totp_last_step is None
    # The operator saw the initial password, so the account has no key pair under it: nothing to open.
    assert user.public_key is None
    assert user.sealed_private_key is None
    assert user.initial_password_seal is not None
    peppers = runtime.secrets.key_peppers
    assert (
        open_with_password_and_pepper(
            created.password, user.initial_password_seal, initial_password_context(user.id), peppers
        )
        == b""
    )
    # The TOTP secret is sealed under a server key: the row does not contain it.
    assert created.totp_secret not in user.sealed_totp_secret
    assert accounts.totp_secret(user) == created.totp_secret
    assert created.totp_uri.startswith("otpauth://totp/")


def test_the_totp_secret_needs_the_server_key(runtime: Runtime, accounts: AccountService) -> None:
    """Given a dump of the row and another server's key, the TOTP secret does not open."""
    with runtime.sessions() as db:
        created = accounts.create_user(db, "a@example.org", "A")
        db.commit()
    other_server = AccountService(bytes(range(32)), key_peppers=(bytes(range(1, 33)),), params=WEAK)
    with pytest.raises(DecryptionError):
        other_server.totp_secret(user_row(runtime, created.user.id))


def test_duplicate_and_invalid_addresses_are_refused(runtime: Runtime, accounts: AccountService) -> None:
    with runtime.sessions() as db:
        accounts.create_user(db, "a@example.org", "A")
        db.commit()
        with pytest.raises(AccountError, match="exists already"):
            accounts.create_user(db, "A@EXAMPLE.org", "A again")
        with pytest.raises(AccountError, match="e-mail"):
            accounts.create_user(db, "not an address", "B")
        with pytest.raises(AccountError, match="display name"):
            accounts.create_user(db, "c@example.org", "\x00")
        with pytest.raises(PasswordRejected):
            accounts.create_user(db, "d@example.org", "D", password="password1234")


def test_change_password_reseals_only_the_private_key(
    runtime: Runtime, accounts: AccountService, make_staff: MakeStaff
) -> None:
    """Given a member, when the password changes, then the public key and the grants stay, the old password
    no longer opens the key, and the new one opens the same key."""
    staff = make_staff(memberships=[("beratung-by", MembershipRole.counsellor)])
    before = user_row(runtime, staff.user_id)
    peppers = runtime.secrets.key_peppers
    with runtime.sessions() as db:
        grant_before = db.scalars(select(MemberKeyGrant)).one()
        user = accounts.user_by_id(db, staff.user_id)
        accounts.change_password(db, user, PASSWORD, "ein ganz neuer Satz als Passwort", keep_session="")
        db.commit()
        grant_after = db.scalars(select(MemberKeyGrant)).one()
    after = user_row(runtime, staff.user_id)
    assert after.public_key == before.public_key
    assert after.sealed_totp_secret == before.sealed_totp_secret
    assert after.sealed_private_key != before.sealed_private_key
    assert (grant_after.wrapped_grant_key, grant_after.sealed_organisation_key) == (
        grant_before.wrapped_grant_key,
        grant_before.sealed_organisation_key,
    )
    assert after.sealed_private_key is not None
    assert before.sealed_private_key is not None
    context = user_key_context(staff.user_id)
    with pytest.raises(DecryptionError):
        open_with_password_and_pepper(PASSWORD, after.sealed_private_key, context, peppers)
    old_key = open_with_password_and_pepper(PASSWORD, before.sealed_private_key, context, peppers)
    new_key = open_with_password_and_pepper(
        "ein ganz neuer Satz als Passwort", after.sealed_private_key, context, peppers
    )
    assert new_key == old_key


def test_the_first_own_password_makes_the_key_pair(runtime: Runtime, accounts: AccountService) -> None:
    """Given an account on its initial password, when its owner sets one of their own, then it gets a key
    pair sealed under that password, and the initial password opens nothing any more."""
    with runtime.sessions() as db:
        created = accounts.create_user(db, "neu@example.org", "Neu")
        db.commit()
        user = accounts.user_by_id(db, created.user.id)
        private = accounts.change_password(db, user, created.password, "mein eigenes langes Passwort", "")
        db.commit()
    after = user_row(runtime, created.user.id)
    assert after.must_change_password is False
    assert after.initial_password_seal is None
    assert after.public_key == private.public_key().raw
    assert after.sealed_private_key is not None
    opened = open_with_password_and_pepper(
        "mein eigenes langes Passwort",
        after.sealed_private_key,
        user_key_context(after.id),
        runtime.secrets.key_peppers,
    )
    assert PrivateKey(opened) == private
    with pytest.raises(DecryptionError):
        open_with_password_and_pepper(
            created.password,
            after.sealed_private_key,
            user_key_context(after.id),
            runtime.secrets.key_peppers,
        )


def test_change_password_refuses_a_wrong_current_one_and_a_weak_new_one(
    runtime: Runtime, accounts: AccountService, make_staff: MakeStaff
) -> None:
    staff = make_staff()
    with runtime.sessions() as db:
        user = accounts.user_by_id(db, staff.user_id)
        with pytest.raises(PasswordRejected) as wrong:
            accounts.change_password(db, user, "falsches Passwort!", "ein ganz neuer Satz", keep_session="")
        assert wrong.value.field == "current_password"
        for weak in ("kurz", "Password123456", PASSWORD):
            with pytest.raises(PasswordRejected):
                accounts.change_password(db, user, PASSWORD, weak, keep_session="")


def test_login_checks_code_then_password_and_uses_each_code_once(
    runtime: Runtime, accounts: AccountService, make_staff: MakeStaff, clock: Clock
) -> None:
    staff = make_staff()
    code = totp_code(staff.totp_secret, clock())
    with runtime.sessions() as db:
        assert accounts.login(db, staff.email, PASSWORD, code) is not None
        db.commit()
        # The same code again, even with the right password: refused.
        assert accounts.login(db, staff.email, PASSWORD, code) is None
        # An older code: refused as well.
        assert accounts.login(db, staff.email, PASSWORD, totp_code(staff.totp_secret, clock() - 30)) is None
        # The next step's code (phone a little ahead) is fine.
        logged_in = accounts.login(
            db, staff.email.upper(), PASSWORD, totp_code(staff.totp_secret, clock() + 30)
        )
        assert logged_in is not None
        assert logged_in.private_key is not None
        assert logged_in.private_key.public_key().raw == logged_in.user.public_key


def test_a_code_used_with_a_wrong_password_is_used_up(
    runtime: Runtime, accounts: AccountService, make_staff: MakeStaff, clock: Clock
) -> None:
    """Every password guess costs a fresh code: a code that passed once never passes again."""
    staff = make_staff()
    code = totp_code(staff.totp_secret, clock())
    with runtime.sessions() as db:
        assert accounts.login(db, staff.email, "falsches Passwort!", code) is None
        db.commit()
        assert accounts.login(db, staff.email, PASSWORD, code) is None


def test_recovery_codes_are_single_use_and_stored_as_keyed_hashes(
    runtime: Runtime, accounts: AccountService, make_staff: MakeStaff, clock: Clock
) -> None:
    staff = make_staff()
    with runtime.sessions() as db:
        user = accounts.user_by_id(db, staff.user_id)
        codes = accounts.new_recovery_codes(
            db, user, password=PASSWORD, current_code=totp_code(staff.totp_secret, clock())
        )
        db.commit()
        stored = [row.code_hash for row in db.scalars(select(RecoveryCode))]
    assert codes is not None
    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert all(code.replace("-", "") not in " ".join(stored).upper() for code in codes)
    with runtime.sessions() as db:
        # Typed in lower case and without dashes: still accepted.
        assert accounts.login(db, staff.email, PASSWORD, codes[0].replace("-", "").lower()) is not None
        db.commit()
        assert accounts.login(db, staff.email, PASSWORD, codes[0]) is None
        assert accounts.recovery_codes_left(db, staff.user_id) == 9
        # New codes replace the old ones (a recovery code serves as the current code).
        fresh = accounts.new_recovery_codes(
            db, accounts.user_by_id(db, staff.user_id), password=PASSWORD, current_code=codes[2]
        )
        db.commit()
        assert fresh is not None
        assert accounts.login(db, staff.email, PASSWORD, codes[1]) is None
        assert accounts.login(db, staff.email, PASSWORD, fresh[1]) is not None


def test_new_recovery_codes_need_the_password_and_a_current_code(
    runtime: Runtime, accounts: AccountService, make_staff: MakeStaff, clock: Clock
) -> None:
    """Given a live session alone (no password, or no fresh code), the second factor cannot be replaced,
    and a refusal changes nothing and writes no audit event of a change."""
    staff = make_staff()
    with runtime.sessions() as db:
        user = accounts.user_by_id(db, staff.user_id)
        first = accounts.new_recovery_codes(
            db, user, password=PASSWORD, current_code=totp_code(staff.totp_secret, clock())
        )
        db.commit()
        assert first is not None
        clock.advance(30)
        wrong_password = accounts.new_recovery_codes(
            db, user, password="nicht das Passwort!", current_code=totp_code(staff.totp_secret, clock())
        )
        clock.advance(30)
        no_code = accounts.new_recovery_codes(db, user, password=PASSWORD, current_code="000000")
        db.commit()
        assert wrong_password is None
        assert no_code is None
        assert accounts.recovery_codes_left(db, staff.user_id) == 10
        assert accounts.login(db, staff.email, PASSWORD, first[0]) is not None


def test_a_disabled_account_cannot_sign_in_and_its_sessions_end(
    runtime: Runtime, accounts: AccountService, make_staff: MakeStaff, subject_of: Subjects, clock: Clock
) -> None:
    staff = make_staff()
    subject_of(staff)
    with runtime.sessions() as db:
        assert accounts.disable(db, accounts.user_by_id(db, staff.user_id)) == 1
        db.commit()
        assert db.scalars(select(WebSession)).all() == []
        assert accounts.login(db, staff.email, PASSWORD, totp_code(staff.totp_secret, clock())) is None


# -- memberships ---------------------------------------------------------------------------------------------


def test_a_member_unwraps_the_organisation_key_and_loses_it_when_revoked(
    runtime: Runtime, accounts: AccountService, make_staff: MakeStaff, subject_of: Subjects
) -> None:
    staff = make_staff(memberships=[("beratung-by", MembershipRole.counsellor)])
    organisation = org(runtime, "beratung-by")
    subject = subject_of(staff)
    assert subject.memberships == ((organisation.id, "counsellor"),)
    # A case key wrapped to the organisation (as the intake does) opens with the member's grant.
    data_key = new_data_key()
    context = Context("case_key", case_id="c1", record_id=organisation.id)
    assert organisation.public_key is not None
    wrapped = wrap_key(data_key, PublicKey(organisation.public_key), context)
    epoch = organisation.current_epoch
    with runtime.sessions() as db:
        organisation_key = subject.organisation_key(db, organisation.id, epoch)
        assert organisation_key.public_key().raw == organisation.public_key
        assert unwrap_key(wrapped, organisation_key, context) == data_key
        # Another organisation is simply not there for this member.
        with pytest.raises(NotFound):
            subject.organisation_key(db, org(runtime, "online-hass").id, 1)
        assert accounts.revoke_membership(db, organisation.id, staff.user_id) is True
        db.commit()
        # Read per call: the revoked grant no longer opens, though the Subject still lists it.
        with pytest.raises(NotFound):
            subject.organisation_key(db, organisation.id, epoch)


@pytest.mark.parametrize("flag", ["admin", "coordinator"])
def test_administrators_and_coordinators_cannot_become_members(
    runtime: Runtime, accounts: AccountService, make_staff: MakeStaff, subject_of: Subjects, flag: str
) -> None:
    lead = subject_of(make_staff(memberships=[("beratung-by", MembershipRole.lead)]))
    staff = make_staff(**{flag: True})
    organisation = org(runtime, "beratung-by")
    with runtime.sessions() as db:
        user = accounts.user_by_id(db, staff.user_id)
        with pytest.raises(AccountError, match="cannot be members"):
            accounts.grant_as_lead(db, lead, organisation.id, user, MembershipRole.counsellor)
        assert db.scalars(select(Membership).where(Membership.user_id == staff.user_id)).all() == []


def test_an_account_on_its_initial_password_cannot_be_granted(
    runtime: Runtime, accounts: AccountService, make_staff: MakeStaff, subject_of: Subjects
) -> None:
    """Given an account whose only password is the one the operator saw, a lead's grant is refused with a
    message that says why, and nothing is stored."""
    lead = subject_of(make_staff(memberships=[("beratung-by", MembershipRole.lead)]))
    pending = make_staff(must_change_password=True)
    organisation = org(runtime, "beratung-by")
    with runtime.sessions() as db:
        user = accounts.user_by_id(db, pending.user_id)
        with pytest.raises(AccountError, match="password of its own"):
            accounts.grant_as_lead(db, lead, organisation.id, user, MembershipRole.counsellor)
        assert db.scalars(select(MemberKeyGrant).where(MemberKeyGrant.user_id == pending.user_id)).all() == []


def test_wrong_recovery_shares_grant_nothing(
    runtime: Runtime, accounts: AccountService, make_staff: MakeStaff
) -> None:
    staff = make_staff()
    organisation = org(runtime, "beratung-by")
    shares = runtime.recovery_shares  # type: ignore[attr-defined]
    with runtime.sessions() as db:
        user = accounts.user_by_id(db, staff.user_id)
        for wrong, message in (
            (shares["online-hass"][:2], "do not belong"),
            (shares["beratung-by"][:1], "2 shares are needed"),
            ([shares["beratung-by"][0], shares["beratung-by"][0]], "twice"),
            ([shares["beratung-by"][0], "not a share"], "recovery share"),
        ):
            with pytest.raises(AccountError, match=message):
                accounts.grant_with_shares(db, organisation, wrong, user, MembershipRole.counsellor)
        assert db.scalars(select(Membership).where(Membership.user_id == staff.user_id)).all() == []


def test_a_lead_grants_and_revokes_with_their_own_grant(
    runtime: Runtime, accounts: AccountService, make_staff: MakeStaff, subject_of: Subjects
) -> None:
    lead = subject_of(make_staff(memberships=[("beratung-by", MembershipRole.lead)]))
    counsellor = make_staff(memberships=[("beratung-by", MembershipRole.counsellor)])
    newcomer = make_staff()
    by, online = org(runtime, "beratung-by"), org(runtime, "online-hass")
    with runtime.sessions() as db:
        user = accounts.user_by_id(db, newcomer.user_id)
        membership = accounts.grant_as_lead(db, lead, by.id, user, MembershipRole.counsellor)
        db.commit()
        assert membership.granted_by == lead.user_id
    newcomer_subject = subject_of(newcomer)
    with runtime.sessions() as db:
        assert (
            newcomer_subject.organisation_key(db, by.id, by.current_epoch).public_key().raw == by.public_key
        )
        user = accounts.user_by_id(db, newcomer.user_id)
        # A counsellor is no lead, and a lead of one organisation is nothing in another: 404 both.
        with pytest.raises(NotFound):
            accounts.grant_as_lead(db, subject_of(counsellor), by.id, user, MembershipRole.lead)
        with pytest.raises(NotFound):
            accounts.grant_as_lead(db, lead, online.id, user, MembershipRole.counsellor)
        assert accounts.revoke_as_lead(db, lead, by.id, newcomer.user_id) is True
        db.commit()
        with pytest.raises(NotFound):
            newcomer_subject.organisation_key(db, by.id, by.current_epoch)
        # The removal began a new epoch; the lead and the remaining counsellor hold it, the newcomer not.
        after = db.get(Organisation, by.id)
        assert after is not None
        assert after.current_epoch == by.current_epoch + 1
        assert lead.private_key is not None
        assert newcomer_subject.private_key is not None
        assert set(member_epoch_keys(db, lead.user_id, lead.private_key, by.id)) == {1, 2}
        assert set(member_epoch_keys(db, newcomer.user_id, newcomer_subject.private_key, by.id)) == set()


def test_reset_removes_the_key_pair_and_drops_the_grants(
    runtime: Runtime, accounts: AccountService, make_staff: MakeStaff, subject_of: Subjects, clock: Clock
) -> None:
    staff = make_staff(memberships=[("beratung-by", MembershipRole.lead)])
    subject_of(staff)
    before = user_row(runtime, staff.user_id)
    with runtime.sessions() as db:
        reset = accounts.reset(db, accounts.user_by_id(db, staff.user_id))
        db.commit()
        assert db.scalars(select(Membership)).all() == []
        assert db.scalars(select(WebSession)).all() == []
    assert reset.ended_sessions == 1
    assert [(d.organisation_slug, d.role) for d in reset.dropped_memberships] == [("beratung-by", "lead")]
    after = user_row(runtime, staff.user_id)
    assert before.public_key is not None
    assert after.public_key is None
    assert after.sealed_private_key is None
    assert after.must_change_password is True
    with runtime.sessions() as db:
        assert accounts.login(db, staff.email, PASSWORD, totp_code(staff.totp_secret, clock())) is None
        new_code = totp_code(reset.credentials.totp_secret, clock() + 30)
        assert accounts.login(db, staff.email, reset.credentials.password, new_code) is not None


def test_a_session_of_an_old_key_pair_opens_nothing(
    runtime: Runtime, accounts: AccountService, make_staff: MakeStaff, code: Callable[[Staff], str]
) -> None:
    """Given a session created before a reset (say, restored from a backup), no Subject comes of it."""
    staff = make_staff()
    with runtime.sessions() as db:
        logged_in = accounts.login(db, staff.email, PASSWORD, code(staff))
        assert logged_in is not None
        assert logged_in.private_key is not None
        accounts.reset(db, logged_in.user)
        cookie = sessions.create(db, sessions.STAFF_SESSION, staff.user_id, logged_in.private_key.raw)
        db.commit()
        opened = sessions.open_session(db, sessions.STAFF_SESSION, cookie)
        assert opened is not None
        assert accounts.subject_for(db, opened) is None


def test_the_last_lead_cannot_remove_themselves(
    runtime: Runtime,
    accounts: AccountService,
    make_staff: MakeStaff,
    subject_of: Subjects,
) -> None:
    """Given an organisation with one lead, the lead's own removal is refused (nobody could grant again, and
    only the custodians could get the organisation back) and changes nothing; with a second lead it works."""
    lead_staff = make_staff(memberships=[("beratung-by", MembershipRole.lead)])
    lead = subject_of(lead_staff)
    by = org(runtime, "beratung-by")
    with runtime.sessions() as db:
        with pytest.raises(AccountError, match="last lead") as refused:
            accounts.revoke_as_lead(db, lead, by.id, lead.user_id)
        assert refused.value.code == "last_lead"
        db.rollback()
        assert org(runtime, "beratung-by").current_epoch == by.current_epoch
        second = make_staff(memberships=[("beratung-by", MembershipRole.lead)])
        assert accounts.revoke_as_lead(db, lead, by.id, lead.user_id) is True
        db.commit()
        assert [
            m.user_id for m in db.scalars(select(Membership).where(Membership.organisation_id == by.id))
        ] == [second.user_id]
