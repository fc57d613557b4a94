"""Staff accounts in the admin: whoever assigns roles can take any role, so an administrator
manages accounts without ever choosing anyone's groups, another person's password or a
superuser's account; every change to an account is in the audit log."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.models import AuditAction, AuditEvent
from tests.admin.conftest import otp_verified_login
from tests.admin.forms import submitted_form
from tests.factories import TOTPDeviceFactory, UserFactory

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "taken over 1234"


@pytest.fixture
def administrator(roles: None) -> object:
    user = UserFactory(username="administrator-persona")
    user.groups.add(Group.objects.get(name="Administrators"))
    return user


@pytest.fixture
def as_administrator(administrator: object) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    otp_verified_login(client, administrator)
    return client


def change_url(user: object) -> str:
    return reverse("admin:auth_user_change", args=[user.pk])


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action))


def test_an_administrator_sees_the_roles_but_cannot_edit_them(
    as_administrator: Client, roles: None
) -> None:
    colleague = UserFactory(username="colleague")
    colleague.groups.add(Group.objects.get(name="Marketers"))

    page = as_administrator.get(change_url(colleague))

    form = page.context["adminform"].form
    assert "groups" not in form.fields and "is_superuser" not in form.fields
    assert "user_permissions" not in form.fields
    assert "Marketers" in page.content.decode()  # shown, read-only


def test_a_forged_post_cannot_add_an_administrator_to_the_dpo_group(
    as_administrator: Client, administrator: object
) -> None:
    dpo = Group.objects.get(name="DPO")
    url = change_url(administrator)
    data = submitted_form(as_administrator.get(url), groups=[str(dpo.pk)])

    response = as_administrator.post(url, data)

    assert response.status_code == 403
    assert not administrator.groups.filter(name="DPO").exists()
    assert not events(AuditAction.STAFF_GROUPS_CHANGED)


def test_a_forged_post_cannot_give_anyone_a_group_superuser_status_or_permissions(
    as_administrator: Client,
) -> None:
    colleague = UserFactory(username="colleague")
    url = change_url(colleague)
    page = as_administrator.get(url)

    for forged in (
        {"groups": [str(Group.objects.get(name="DPO").pk)]},
        {"is_superuser": "on"},
        {"user_permissions": ["1"]},
    ):
        response = as_administrator.post(url, submitted_form(page, **forged))
        assert response.status_code == 403

    colleague.refresh_from_db()
    assert not colleague.groups.exists() and not colleague.is_superuser
    assert not colleague.user_permissions.exists()


def test_a_forged_add_with_groups_is_refused(as_administrator: Client) -> None:
    response = as_administrator.post(
        reverse("admin:auth_user_add"),
        {
            "username": "sneaky",
            "password1": "a long pass phrase 42",
            "password2": "a long pass phrase 42",
            "usable_password": "true",
            "groups": [str(Group.objects.get(name="DPO").pk)],
        },
    )

    assert response.status_code == 403
    assert not UserFactory._meta.model.objects.filter(username="sneaky").exists()


def test_an_administrator_creates_an_account_without_groups_and_it_is_audited(
    as_administrator: Client,
) -> None:
    response = as_administrator.post(
        reverse("admin:auth_user_add"),
        {
            "username": "new-marketer",
            "password1": "a long pass phrase 42",
            "password2": "a long pass phrase 42",
            "usable_password": "true",
        },
    )

    assert response.status_code == 302
    created = UserFactory._meta.model.objects.get(username="new-marketer")
    assert not created.groups.exists()
    [event] = events(AuditAction.STAFF_ACCOUNT_CREATED)
    assert event.username == "administrator-persona"
    assert event.details == {"account": "new-marketer"}


def test_an_administrator_edits_a_name_and_deactivates_an_account_both_audited(
    as_administrator: Client,
) -> None:
    colleague = UserFactory(username="colleague", first_name="Anne")
    url = change_url(colleague)
    data = submitted_form(as_administrator.get(url), first_name="Annie", is_active=None)

    response = as_administrator.post(url, data)

    assert response.status_code == 302
    colleague.refresh_from_db()
    assert colleague.first_name == "Annie" and not colleague.is_active
    [deactivated] = events(AuditAction.STAFF_ACCOUNT_DEACTIVATED)
    assert deactivated.details == {"account": "colleague"}
    [changed] = events(AuditAction.STAFF_ACCOUNT_CHANGED)
    assert changed.details == {"account": "colleague", "fields": ["first_name"]}


def test_an_administrator_cannot_set_another_persons_password(as_administrator: Client) -> None:
    dpo = UserFactory(username="the-dpo")
    url = reverse("admin:auth_user_password_change", args=[dpo.pk])

    assert as_administrator.get(url).status_code == 403
    response = as_administrator.post(
        url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"}
    )

    assert response.status_code == 403
    dpo.refresh_from_db()
    assert not dpo.check_password(NEW_PASSWORD)
    # nor is led to it: the user's page has no "Reset password" link
    page = as_administrator.get(change_url(dpo)).content.decode()
    assert 'href="../password/"' not in page and url not in page


def test_an_administrator_sets_their_own_password_and_it_is_audited(
    as_administrator: Client, administrator: object
) -> None:
    url = reverse("admin:auth_user_password_change", args=[administrator.pk])

    response = as_administrator.post(
        url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"}
    )

    assert response.status_code == 302
    administrator.refresh_from_db()
    assert administrator.check_password(NEW_PASSWORD)
    [event] = events(AuditAction.STAFF_PASSWORD_SET)
    assert event.details == {"account": "administrator-persona"}


def test_a_superuser_sets_anyones_password_and_groups_audited(as_superuser: Client) -> None:
    colleague = UserFactory(username="colleague")
    password_url = reverse("admin:auth_user_password_change", args=[colleague.pk])
    as_superuser.post(
        password_url,
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )
    dpo = Group.objects.create(name="DPO")
    url = change_url(colleague)

    response = as_superuser.post(url, submitted_form(as_superuser.get(url), groups=[str(dpo.pk)]))

    assert response.status_code == 302
    colleague.refresh_from_db()
    assert colleague.check_password(NEW_PASSWORD)
    assert list(colleague.groups.values_list("name", flat=True)) == ["DPO"]
    assert events(AuditAction.STAFF_PASSWORD_SET)[0].details == {"account": "colleague"}
    [groups] = events(AuditAction.STAFF_GROUPS_CHANGED)
    assert groups.details == {"account": "colleague", "added": ["DPO"], "removed": []}


def test_an_administrator_cannot_change_or_deactivate_a_superuser(
    as_administrator: Client,
) -> None:
    root = UserFactory(username="root", is_superuser=True, email="root@staff.example.fr")
    url = change_url(root)

    response = as_administrator.post(
        url, {"username": "root", "email": "attacker@example.com", "is_staff": "on"}
    )

    assert response.status_code == 403
    root.refresh_from_db()
    assert root.email == "root@staff.example.fr" and root.is_active


def test_an_administrator_resets_a_colleagues_device_and_it_is_audited(
    as_administrator: Client,
) -> None:
    device = TOTPDeviceFactory(user=UserFactory(username="lost-phone"))
    url = reverse("admin:core_staffdevice_delete", args=[device.pk])

    response = as_administrator.post(url, {"post": "yes"})

    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(pk=device.pk).exists()
    [event] = events(AuditAction.STAFF_DEVICE_DELETED)
    assert event.details == {"account": "lost-phone", "device": "phone"}


@pytest.mark.parametrize("whose", ["own", "superuser"])
def test_an_administrator_cannot_delete_their_own_or_a_superusers_device(
    as_administrator: Client, administrator: object, whose: str
) -> None:
    if whose == "own":
        device = TOTPDevice.objects.get(user=administrator)
    else:
        device = TOTPDeviceFactory(user=UserFactory(username="root", is_superuser=True))

    one = as_administrator.post(
        reverse("admin:core_staffdevice_delete", args=[device.pk]), {"post": "yes"}
    )
    bulk = as_administrator.post(
        reverse("admin:core_staffdevice_changelist"),
        {"action": "delete_selected", "_selected_action": [str(device.pk)], "post": "yes"},
    )

    assert one.status_code == 403 and bulk.status_code == 403
    assert TOTPDevice.objects.filter(pk=device.pk).exists()
    assert not events(AuditAction.STAFF_DEVICE_DELETED)


def test_the_audit_log_tells_a_staff_account_change_in_words(
    as_superuser: Client, as_administrator: Client
) -> None:
    as_administrator.post(
        reverse("admin:auth_user_add"),
        {
            "username": "new-marketer",
            "password1": "a long pass phrase 42",
            "password2": "a long pass phrase 42",
            "usable_password": "true",
        },
    )

    page = as_superuser.get(reverse("admin:core_auditevent_changelist")).content.decode()

    assert "Created a staff account" in page
    assert "staff account: new-marketer" in page


def test_granting_superuser_status_and_a_permission_is_audited_with_before_and_after(
    as_superuser: Client,
) -> None:
    colleague = UserFactory(username="colleague")
    permission = Permission.objects.get(codename="view_auditevent")
    url = change_url(colleague)
    data = submitted_form(
        as_superuser.get(url), is_superuser="on", user_permissions=[str(permission.pk)]
    )

    response = as_superuser.post(url, data)

    assert response.status_code == 302
    [event] = events(AuditAction.STAFF_PRIVILEGES_CHANGED)
    assert event.details == {
        "account": "colleague",
        "superuser_before": False,
        "superuser_after": True,
        "permissions_added": ["core.view_auditevent"],
        "permissions_removed": [],
    }
    assert not events(AuditAction.STAFF_ACCOUNT_CHANGED)


def test_taking_a_permission_away_is_audited(as_superuser: Client) -> None:
    colleague = UserFactory(username="colleague")
    colleague.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    url = change_url(colleague)

    as_superuser.post(url, submitted_form(as_superuser.get(url), user_permissions=[]))

    [event] = events(AuditAction.STAFF_PRIVILEGES_CHANGED)
    assert event.details == {
        "account": "colleague",
        "permissions_added": [],
        "permissions_removed": ["core.view_auditevent"],
    }


def test_an_administrator_cannot_delete_the_device_of_an_account_with_another_role(
    as_administrator: Client, as_superuser: Client
) -> None:
    dpo = UserFactory(username="the-dpo")
    dpo.groups.add(Group.objects.get(name="DPO"))
    device = TOTPDeviceFactory(user=dpo)

    one = as_administrator.post(
        reverse("admin:core_staffdevice_delete", args=[device.pk]), {"post": "yes"}
    )
    bulk = as_administrator.post(
        reverse("admin:core_staffdevice_changelist"),
        {"action": "delete_selected", "_selected_action": [str(device.pk)], "post": "yes"},
    )

    assert one.status_code == 403 and bulk.status_code == 403
    assert TOTPDevice.objects.filter(pk=device.pk).exists()
    # a superuser can
    response = as_superuser.post(
        reverse("admin:core_staffdevice_delete", args=[device.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(pk=device.pk).exists()


def test_an_account_an_administrator_creates_cannot_log_in_with_a_password_they_typed(
    as_administrator: Client,
) -> None:
    page = as_administrator.get(reverse("admin:auth_user_add"))
    assert not {"password1", "password2", "usable_password"} & set(
        page.context["adminform"].form.fields
    )

    response = as_administrator.post(
        reverse("admin:auth_user_add"),
        {
            "username": "future-dpo",
            "password1": "a long pass phrase 42",
            "password2": "a long pass phrase 42",
            "usable_password": "true",
        },
    )

    assert response.status_code == 302
    created = UserFactory._meta.model.objects.get(username="future-dpo")
    assert not created.has_usable_password()
    visitor = Client()
    visitor.post(
        reverse("admin:login"), {"username": "future-dpo", "password": "a long pass phrase 42"}
    )
    assert "_auth_user_id" not in visitor.session


def test_a_superuser_still_creates_an_account_with_a_password(as_superuser: Client) -> None:
    response = as_superuser.post(
        reverse("admin:auth_user_add"),
        {
            "username": "with-password",
            "password1": "a long pass phrase 42",
            "password2": "a long pass phrase 42",
            "usable_password": "true",
        },
    )

    assert response.status_code == 302
    created = UserFactory._meta.model.objects.get(username="with-password")
    assert created.check_password("a long pass phrase 42")


def test_the_audit_log_tells_a_privilege_change_in_words(as_superuser: Client) -> None:
    colleague = UserFactory(username="colleague")
    url = change_url(colleague)
    as_superuser.post(url, submitted_form(as_superuser.get(url), is_superuser="on"))

    page = as_superuser.get(reverse("admin:core_auditevent_changelist")).content.decode()

    assert "superuser before: no" in page and "superuser after: yes" in page
