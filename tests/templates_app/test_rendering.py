"""Placeholders are filled by name, and nothing else in a company's text runs."""

from hypothesis import given, settings
from hypothesis import strategies as st

from templates_app.rendering import compile_text, placeholders, render


def test_a_value_fills_its_placeholder_however_it_is_spaced():
    assert render("Hi {{first_name}}, {{ first_name }}!", {"first_name": "Ada"}) == "Hi Ada, Ada!"


def test_a_missing_value_is_left_out_of_a_send_but_shown_in_a_preview():
    assert render("Hi {{ first_name }}.", {}) == "Hi ."
    assert render("Hi {{ first_name }}.", {}, keep_missing=True) == "Hi {{ first_name }}."


def test_values_are_escaped_in_html_and_template_syntax_does_not_run():
    html = render("<p>{{ name }}</p>", {"name": "<script>x</script>"}, escape=True)
    assert html == "<p>&lt;script&gt;x&lt;/script&gt;</p>"
    assert render("{% load x %}{{ a.b }}", {"a": "z"}) == "{% load x %}{{ a.b }}"


def test_placeholders_are_listed_once_in_order():
    assert placeholders("{{ b }} {{ a }} {{ b }}") == ["b", "a"]


@settings(deadline=None)  # a busy machine must not fail a property
@given(
    text=st.text(alphabet="ab {}<&_x", max_size=40),
    context=st.dictionaries(st.sampled_from(["a", "b", "x"]), st.one_of(st.none(), st.text())),
    escape=st.booleans(),
)
def test_a_text_compiled_once_renders_as_render_does(text, context, escape):
    assert compile_text(text, escape=escape)(context) == render(text, context, escape=escape)
