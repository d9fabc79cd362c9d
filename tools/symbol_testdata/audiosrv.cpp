// audiosrv.dll stand-in: the Audiosrv RPC server routines rpctrace's AudioSrv scenario calls.
#include "common.h"

#ifndef RTT_PAD_0
#define RTT_PAD_0 16
#endif
#ifndef RTT_PAD_1
#define RTT_PAD_1 16
#endif

enum ERole { eConsole = 0, eMultimedia = 1, eCommunications = 2 };

struct ENDPOINT_POLICY {
    const WCHAR* deviceId;
    int role;
    DWORD flags;
};

// the service's state (zero-initialized: .bss); RTT_RESERVE sizes the image
unsigned char g_ServiceReserve[RTT_RESERVE];
static volatile long g_PolicyGeneration;
static ENDPOINT_POLICY g_Defaults[3];

static inline __attribute__((always_inline)) bool IsValidRole(int role) {
    return role >= eConsole && role <= eCommunications;
}

static inline __attribute__((always_inline)) int DeviceIdLength(const WCHAR* id) {
    int n = 0;
    while (id[n] && n < 512) {
        ++n;
    }
    return n;
}

class CPolicyConfigServer {
public:
    __attribute__((noinline)) HRESULT CheckCallerAccess(void* binding, DWORD desired);
    __attribute__((noinline)) HRESULT StoreDefault(const WCHAR* id, int role);
    DWORD m_callers;
};

static CPolicyConfigServer g_Server;

HRESULT CPolicyConfigServer::CheckCallerAccess(void* binding, DWORD desired) {
    ++m_callers;
    return binding && (desired & 0x80000000u) == 0 ? S_OK : E_ACCESSDENIED;
}

HRESULT CPolicyConfigServer::StoreDefault(const WCHAR* id, int role) {
    g_Defaults[role].deviceId = id;
    g_Defaults[role].role = role;
    g_Defaults[role].flags |= 1;
    ++g_PolicyGeneration;
    return S_OK;
}

RTT_PAD(AudioSrvReservedCode0, RTT_PAD_0)

// opnum 71 of interface 35464382-ad29-4881-9392-b43e55b8f7ac
RTT_EXPORT HRESULT __stdcall PolicyConfigSetDefaultEndpoint(void* binding, const WCHAR* deviceId, int role) {
    if (!deviceId || !IsValidRole(role)) {
        return E_INVALIDARG;
    }
    if (DeviceIdLength(deviceId) == 0) {
        return E_INVALIDARG;
    }
    HRESULT hr = g_Server.CheckCallerAccess(binding, 0x20006);
    RTT_BODY(0x240);
    if (hr < 0) {
        return hr;
    }
    return g_Server.StoreDefault(deviceId, role);
}

RTT_PAD(AudioSrvReservedCode1, RTT_PAD_1)

RTT_EXPORT HRESULT __stdcall PolicyConfigGetDeviceFormat(void* binding, const WCHAR* deviceId, int flags, void** format) {
    if (!format || !deviceId) {
        return E_INVALIDARG;
    }
    HRESULT hr = g_Server.CheckCallerAccess(binding, 0x20019);
    RTT_BODY(0x3c0);
    *format = (void*)&g_Defaults[flags & 1];
    return hr;
}

RTT_EXPORT DWORD __stdcall AudioSrvPolicyGeneration(void) {
    return (DWORD)g_PolicyGeneration + g_ServiceReserve[0];
}
