"""The AudioSrv incident's key and parent as data, for the demo and the tests.

BlackINT3's article (../shared/reference/etw-and-alpc-facts.md §8) found that on the failing
machine the Render device key
``HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\MMDevices\\Audio\\Render\\{34bb9f66-...}``
had explicit permissions giving NT Service\\Audiosrv and NT Service\\AudioEndpointBuilder only
read access, with inheritance from the parent turned off; re-enabling inheritance from the Render
key fixed it.  The article shows no SDDL, so the two descriptors below RECONSTRUCT its description
- plausible owners and the usual SYSTEM / Administrators / Users / ALL APPLICATION PACKAGES
entries - and are not a copy of any real machine's registry:

* the device key: a protected DACL (``D:PAI``) granting SYSTEM and Administrators full control,
  the two audio service SIDs only KEY_READ, Users and ALL APPLICATION PACKAGES KEY_READ;
* the Render key: inheritable (CI) full control for the two audio service SIDs, SYSTEM and
  Administrators, read for Users and ALL APPLICATION PACKAGES - so re-enabling inheritance on the
  device key grants the services KEY_WRITE.
"""

from __future__ import annotations

from rpctrace.knowledge.access import KEY_WOW64_64KEY, KEY_WRITE
from rpctrace.knowledge.sids import principals_for_service, service_sid

AUDIOSRV_SID = service_sid("Audiosrv")  # S-1-5-80-2676549577-1911656217-2625096541-4178041876-1366760775
AUDIO_ENDPOINT_BUILDER_SID = service_sid("AudioEndpointBuilder")  # S-1-5-80-1580948945-...

AUDIO_RENDER_PARENT_PATH = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\MMDevices\Audio\Render"
AUDIO_RENDER_KEY_PATH = AUDIO_RENDER_PARENT_PATH + r"\{34bb9f66-ad6b-4d17-b74b-7aace4320530}"

#: the failing open: samDesired 0x20106 = KEY_WRITE | KEY_WOW64_64KEY
AUDIO_DESIRED_ACCESS = KEY_WRITE | KEY_WOW64_64KEY

#: the device key as the article describes it (reconstruction): inheritance off, services read-only
AUDIO_RENDER_KEY_SDDL = (
    "O:BAG:SYD:PAI"
    "(A;CI;KA;;;SY)"
    "(A;CI;KA;;;BA)"
    f"(A;CI;KR;;;{AUDIO_ENDPOINT_BUILDER_SID})"
    f"(A;CI;KR;;;{AUDIOSRV_SID})"
    "(A;CI;KR;;;BU)"
    "(A;CI;KR;;;AC)"
)

#: the Render key (reconstruction): inheritable full control for the services, SYSTEM, Administrators
AUDIO_RENDER_PARENT_SDDL = (
    "O:BAG:SYD:PAI"
    f"(A;CI;KA;;;{AUDIO_ENDPOINT_BUILDER_SID})"
    f"(A;CI;KA;;;{AUDIOSRV_SID})"
    "(A;CI;KA;;;SY)"
    "(A;CI;KA;;;BA)"
    "(A;CI;KR;;;BU)"
    "(A;CI;KR;;;AC)"
)


def audiosrv_principals() -> list[str]:
    """The svchost worker's principal set: NT SERVICE\\Audiosrv running as LOCAL SERVICE."""
    return principals_for_service("Audiosrv", "LOCAL SERVICE")
