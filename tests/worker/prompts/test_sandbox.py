from __future__ import annotations

from collections.abc import Callable

import pytest

from mamba_worker.prompts import PromptManager, TemplateSecurityError

MakeManager = Callable[..., PromptManager]


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__ }}",
        "{{ ''['__class__'] }}",
        "{{ '' | attr('__class__') }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ lipsum.__globals__['os'] }}",
        "{{ config.__class__ }}",
        "{{ '{0.__class__}'.format('') }}",
        "{{ self.__init__ }}",
    ],
)
@pytest.mark.parametrize("strict", [False, True])
def test_private_attribute_access_is_refused(make_manager: MakeManager, source: str, strict: bool) -> None:
    manager = make_manager(strict_mode=strict)
    manager.register("evil", source)

    with pytest.raises(TemplateSecurityError) as info:
        manager.render("evil", config={})

    assert info.value.name == "evil"
    assert "not allowed" in info.value.reason


def test_mutating_a_passed_value_is_refused(make_manager: MakeManager) -> None:
    manager = make_manager()
    manager.register("evil", "{{ items.append(4) }}{{ settings.update(admin=True) }}")
    items = [1, 2, 3]

    with pytest.raises(TemplateSecurityError):
        manager.render("evil", items=items, settings={})

    assert items == [1, 2, 3]


def test_calling_a_private_method_of_a_passed_object_is_refused(make_manager: MakeManager) -> None:
    class Service:
        def _delete_everything(self) -> str:
            return "deleted"

    manager = make_manager()
    manager.register("evil", "{{ svc._delete_everything() }}")

    with pytest.raises(TemplateSecurityError):
        manager.render("evil", svc=Service())


@pytest.mark.parametrize("source", ["{{ 'x' * 100000000 }}", "{{ [0] * 100000000 }}", "{{ 9 ** 9999999 }}"])
def test_huge_values_are_refused(make_manager: MakeManager, source: str) -> None:
    manager = make_manager()
    manager.register("big", source)

    with pytest.raises(TemplateSecurityError):
        manager.render("big")


def test_modest_arithmetic_and_repetition_still_work(make_manager: MakeManager) -> None:
    manager = make_manager()
    manager.register("ok", "{{ '-' * 3 }}{{ 2 ** 10 }}{{ 3 * 4 }}{{ [1] * 2 }}")

    assert manager.render("ok") == "---102412[1, 1]"


def test_reading_public_data_and_safe_methods_works(make_manager: MakeManager) -> None:
    manager = make_manager()
    manager.register("ok", "{{ user.name.upper() }} {{ tools | map(attribute='name') | join(', ') }} {{ d.get('k') }}")

    rendered = manager.render("ok", user={"name": "ann"}, tools=[{"name": "a"}, {"name": "b"}], d={"k": "v"})

    assert rendered == "ANN a, b v"
