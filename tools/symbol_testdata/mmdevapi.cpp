// MMDevAPI.dll stand-in: the endpoint property store methods the AudioSrv scenario's stacks show.
#include "common.h"

#ifndef RTT_PAD_0
#define RTT_PAD_0 16
#endif
#ifndef RTT_PAD_1
#define RTT_PAD_1 16
#endif

unsigned char g_DeviceReserve[RTT_RESERVE];

typedef HRESULT (*REG_WRITER)(const WCHAR* key, const WCHAR* value, const void* data, DWORD size);
REG_WRITER g_Writer;  // set by the service at start (not static: the compiler must not assume null)
REG_WRITER g_Reader;

static inline __attribute__((always_inline)) HRESULT HresultFromStatus(long status) {
    return status == 0 ? S_OK : (status == (long)0xC0000022L ? E_ACCESSDENIED : (HRESULT)(0x80070000L | (status & 0xFFFF)));
}

class CSubEndpointDevice {
public:
    __attribute__((noinline)) HRESULT GetRegValue(const WCHAR* valueName, void* data, DWORD size);
    __attribute__((noinline)) HRESULT SetRegValue(const WCHAR* valueName, const void* data, DWORD size);
    __attribute__((noinline)) const WCHAR* KeyPath() const;
private:
    const WCHAR* m_keyPath;
    DWORD m_state;
};

const WCHAR* CSubEndpointDevice::KeyPath() const {
    return m_keyPath;
}

RTT_PAD(MMDevReservedCode0, RTT_PAD_0)

HRESULT CSubEndpointDevice::GetRegValue(const WCHAR* valueName, void* data, DWORD size) {
    if (!g_Reader) {
        return E_INVALIDARG;
    }
    RTT_BODY(0xa0);
    return g_Reader(KeyPath(), valueName, data, size);
}

RTT_PAD(MMDevReservedCode1, RTT_PAD_1)

HRESULT CSubEndpointDevice::SetRegValue(const WCHAR* valueName, const void* data, DWORD size) {
    if (!valueName || !g_Writer) {
        return E_INVALIDARG;
    }
    long status = (long)g_Writer(KeyPath(), valueName, data, size);
    RTT_BODY(0x280);
    m_state = (DWORD)status;
    return HresultFromStatus(status);
}

RTT_EXPORT HRESULT __stdcall MMDevSetEndpointValue(CSubEndpointDevice* device, const WCHAR* name, DWORD value) {
    return device->SetRegValue(name, &value, sizeof(value)) + g_DeviceReserve[0];
}

RTT_EXPORT HRESULT __stdcall MMDevGetEndpointValue(CSubEndpointDevice* device, const WCHAR* name, DWORD* value) {
    return device->GetRegValue(name, value, sizeof(*value));
}
