"""The real DHIS2 Capture web app on the sandbox: its files, and the metadata endpoints it reads.

DHIS2 2.41 serves its bundled Capture app at `<context path>/dhis-web-capture/`, on the API's own
origin, so the app signs in with the server's session. The sandbox does the same with a build
given on the command line (`dhims2 sandbox --capture-app DIR`), and answers the app's metadata
requests from the sandbox's own program. docs/CAPTURE.md lists every endpoint and its source in
dhis2-core.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dhims2.sandbox.catalog import Catalog
from dhims2.sandbox.fields import parse_fields, select_fields
from dhims2.sandbox.params import Query, first
from dhims2.sandbox.webmessage import ApiError

BUILD_MARKER = "index.html"
# DHIS2's date format setting (keyDateFormat) as system/info reports it; Capture shows dates so.
DATE_FORMATS = ("yyyy-mm-dd", "dd-mm-yyyy")
# app-platform 12 (Capture v106) reads the server's address from this meta tag; DHIS2's app
# servlet fills it in (dhis2-core AppController, `__DHIS2_BASE_URL__`).
BASE_URL_PLACEHOLDER = "__DHIS2_BASE_URL__"
# DHIS2's built-in default category combo and its category: the same UIDs on every server.
DEFAULT_CATEGORY_COMBO = {
    "id": "bjDvmb4bfuf",
    "displayName": "default",
    "isDefault": True,
    "categories": [{"id": "GLevLNI9wkl", "displayName": "default"}],
}
# Capture caches programs and option sets in IndexedDB until their `version` changes.
METADATA_VERSION = 1
READ_WRITE = {
    "read": True,
    "write": True,
    "data": {"read": True, "write": True},
}
_ALPHANUMERIC = string.ascii_letters + string.digits
_ID_IN = re.compile(r"id:in:\[([^\]]*)\]")

Handler = Callable[..., Any]


class CaptureBuildMissing(ValueError):
    """The folder given is not a Capture build."""


class CaptureApp:
    """The Capture build's files and the metadata requests it makes, from the sandbox catalog."""

    def __init__(self, folder: Path, catalog: Catalog) -> None:
        folder = Path(folder).resolve()
        if not (folder / BUILD_MARKER).is_file():
            raise CaptureBuildMissing(f"{folder} has no {BUILD_MARKER}: not a Capture app build")
        self.folder = folder
        self._catalog = catalog
        self._index = (folder / BUILD_MARKER).read_text("utf-8")
        self._data_elements = {
            element["id"]: element
            for program in catalog.programs.values()
            for stage in program.get("programStages", [])
            for element in (
                stage_element["dataElement"]
                for stage_element in stage.get("programStageDataElements", [])
            )
        }

    # --- files ---------------------------------------------------------------------------------

    def index_html(self, base_url: str) -> bytes:
        """index.html with the server's address filled in, as each app-platform version reads it."""
        if BASE_URL_PLACEHOLDER in self._index:
            return self._index.replace(BASE_URL_PLACEHOLDER, base_url).encode("utf-8")
        # app-platform 10 (Capture v101) has no placeholder: its standalone build reads the
        # address from localStorage.DHIS2_BASE_URL (app-platform's adapter, `useServerUrl`).
        script = f"<script>localStorage.setItem('DHIS2_BASE_URL', {json.dumps(base_url)})</script>"
        return self._index.replace("<head>", "<head>" + script, 1).encode("utf-8")

    def file(self, relative: str) -> tuple[bytes, str] | None:
        """A build file's bytes and content type, or None (also for paths outside the build)."""
        path = (self.folder / relative).resolve()
        if not path.is_relative_to(self.folder) or not path.is_file():
            return None
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return path.read_bytes(), content_type

    # --- metadata ------------------------------------------------------------------------------

    def routes(self) -> list[tuple[str, str, Handler]]:
        """(method, path pattern, handler(request_query, user, *groups) -> JSON value)."""
        return [
            ("GET", "/api/programs", self.programs),
            ("GET", "/api/programs/orgUnits", self.program_org_units),
            ("GET", "/api/dataElements", self.data_elements),
            ("GET", "/api/optionSets", self.option_sets),
            ("GET", "/api/userSettings", self.user_settings),
            ("GET", "/api/systemSettings/([^/]+)", self.system_setting),
            ("GET", "/api/me/dashboard", self.dashboard),
            ("GET", "/api/dataStore/([^/]+)(?:/([^/]+))?", self.missing_data_store_key),
            ("GET", "/api/userDataStore/([^/]+)(?:/([^/]+))?", self.missing_data_store_key),
        ]

    def programs(self, query: Query, user: dict[str, Any]) -> Any:
        programs = [self.program(uid) for uid in self._catalog.programs]
        return _page_of("programs", _with_ids(programs, query), query)

    def program(self, uid: str) -> dict[str, Any]:
        """One program as DHIS2 describes it to Capture; `fields` then keeps what was asked."""
        program = self._catalog.programs[uid]
        return {
            "id": uid,
            "name": program["name"],
            "displayName": program["name"],
            "displayShortName": program["name"],
            "description": "",
            "programType": program["programType"],
            "version": METADATA_VERSION,
            "style": {},
            "access": READ_WRITE,
            "categoryCombo": DEFAULT_CATEGORY_COMBO,
            "expiryDays": 0,
            "completeEventsExpiryDays": 0,
            "featureType": "NONE",
            "onlyEnrollOnce": False,
            "displayFrontPageList": False,
            "userRoles": [],
            "programSections": [],
            "programTrackedEntityAttributes": [],
            "organisationUnits": program.get("organisationUnits", []),
            "programStages": [self._stage(stage) for stage in program.get("programStages", [])],
        }

    def _stage(self, stage: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": stage["id"],
            "name": stage["name"],
            "displayName": stage["name"],
            "description": "",
            "access": READ_WRITE,
            "repeatable": stage.get("repeatable", False),
            "formType": "DEFAULT",
            "featureType": "NONE",
            "validationStrategy": stage.get("validationStrategy", "ON_COMPLETE"),
            "displayExecutionDateLabel": "Report date",
            "enableUserAssignment": False,
            "hideDueDate": False,
            "minDaysFromStart": 0,
            "style": {},
            "programStageSections": [],
            "programStageDataElements": [
                {
                    "compulsory": bool(stage_element.get("compulsory")),
                    "displayInReports": True,
                    "renderOptionsAsRadio": bool(stage_element.get("renderOptionsAsRadio")),
                    "allowFutureDate": False,
                    "renderType": None,
                    "dataElement": self._data_element(stage_element["dataElement"]),
                }
                for stage_element in stage.get("programStageDataElements", [])
            ],
        }

    def _data_element(self, element: dict[str, Any]) -> dict[str, Any]:
        label = element.get("formName") or element["name"]
        described: dict[str, Any] = {
            "id": element["id"],
            "name": element["name"],
            "code": element.get("code"),
            "displayName": element["name"],
            "displayShortName": element["name"],
            "displayFormName": label,
            "description": "",
            "url": None,
            "valueType": element["valueType"],
            "translations": [],
            "attributeValues": [],
            "style": {},
            "optionSetValue": "optionSet" in element,
        }
        if "optionSet" in element:
            described["optionSet"] = {"id": element["optionSet"]["id"], "version": METADATA_VERSION}
        return described

    def program_org_units(self, query: Query, user: dict[str, Any]) -> Any:
        # dhis2-core ProgramController#getOrgUnitsAssociations: {programUid: [orgUnitUid, ...]}.
        wanted = _split(first(query, "programs")) or set(self._catalog.program_org_units)
        return {
            uid: sorted(units)
            for uid, units in self._catalog.program_org_units.items()
            if uid in wanted
        }

    def data_elements(self, query: Query, user: dict[str, Any]) -> Any:
        elements = [self._data_element(element) for element in self._data_elements.values()]
        return _page_of("dataElements", _with_ids(elements, query), query)

    def option_sets(self, query: Query, user: dict[str, Any]) -> Any:
        sets: dict[str, dict[str, Any]] = {}
        for element in self._data_elements.values():
            option_set = element.get("optionSet")
            if option_set and option_set["id"] not in sets:
                sets[option_set["id"]] = _option_set(option_set, element["valueType"])
        return _page_of("optionSets", _with_ids(list(sets.values()), query), query)

    def user_settings(self, query: Query, user: dict[str, Any]) -> Any:
        return USER_SETTINGS

    def system_setting(self, query: Query, user: dict[str, Any], key: str) -> Any:
        # dhis2-core SystemSettingController#getSystemSettingOrTranslationAsJson: {key: value};
        # the sandbox has none of the header bar's settings, so each is empty. (A guess for
        # keys that DHIS2 would fill with a default.)
        return {key: ""}

    def dashboard(self, query: Query, user: dict[str, Any]) -> Any:
        # dhis2-core MeController#getDashboard: the header bar's unread counters.
        return {"unreadInterpretations": 0, "unreadMessageConversations": 0}

    def missing_data_store_key(
        self, query: Query, user: dict[str, Any], namespace: str, key: str | None
    ) -> Any:
        # The sandbox keeps no data store: Capture then uses its defaults (its
        # dataStore/capture reads all accept a 404). Messages as DatastoreController's.
        if key is None:
            raise ApiError(404, f"Namespace not found: '{namespace}'", errorCode="E1005")
        raise ApiError(404, f"Key '{key}' not found in namespace '{namespace}'", errorCode="E1005")


# Capture reads the UI and database locales from the user's settings (dhis2-core
# UserSettingController#getAllUserSettings answers every setting by its key).
USER_SETTINGS = {
    "keyUiLocale": "en",
    "keyDbLocale": "en",
    "keyAnalysisDisplayProperty": "name",
    "keyStyle": "light_blue/light_blue.css",
}


def empty_list(resource: str, query: Query) -> dict[str, Any]:
    """What DHIS2 answers for a metadata list that has nothing to show (AbstractCrudController)."""
    return _page_of(resource, [], query)


def _option_set(option_set: dict[str, Any], value_type: str) -> dict[str, Any]:
    return {
        "id": option_set["id"],
        "name": option_set.get("name", option_set["id"]),
        "displayName": option_set.get("name", option_set["id"]),
        "code": None,
        "version": METADATA_VERSION,
        "valueType": value_type,
        "attributeValues": [],
        "options": [
            {
                "id": option_uid(option_set["id"], option["code"]),
                "code": option["code"],
                "name": option["name"],
                "displayName": option["name"],
                "style": {},
                "attributeValues": [],
                "translations": [],
            }
            for option in option_set.get("options", [])
        ],
    }


def option_uid(option_set_uid: str, code: str) -> str:
    """A stable option UID: the bundled metadata names options by code only."""
    digest = hashlib.sha256(f"{option_set_uid}/{code}".encode()).digest()
    return "o" + "".join(_ALPHANUMERIC[byte % len(_ALPHANUMERIC)] for byte in digest[:10])


def _split(raw: str | None) -> set[str]:
    return {part for part in re.split(r"[,;]", raw or "") if part}


def _with_ids(items: list[dict[str, Any]], query: Query) -> list[dict[str, Any]]:
    """Applies `filter=id:in:[a,b]`, the only filter Capture puts on the lists it reads whole."""
    wanted: set[str] = set()
    for raw in query.get("filter", []):
        match = _ID_IN.fullmatch(raw.strip())
        if match:
            wanted |= _split(match.group(1))
    return [item for item in items if item["id"] in wanted] if wanted else items


def _page_of(resource: str, items: list[dict[str, Any]], query: Query) -> dict[str, Any]:
    """One page holding everything, with DHIS2's pager; `fields` keeps what was asked for."""
    fields = first(query, "fields")
    selected = select_fields(items, parse_fields(fields)) if fields else items
    if first(query, "paging") == "false":
        return {resource: selected}
    size = len(items) or 50
    pager = {"page": 1, "pageCount": 1, "total": len(items), "pageSize": size}
    return {"pager": pager, resource: selected}
