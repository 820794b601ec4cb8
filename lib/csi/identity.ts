/** CSI Identity: who the plugin is, what services it offers, whether it is ready. */
import { DRIVER_NAME, type DriverSettings } from './driver.js'

export function identityService(settings: DriverSettings, ready: () => Promise<boolean>) {
  return {
    GetPluginInfo: async () => ({ name: DRIVER_NAME, vendor_version: settings.vendorVersion, manifest: {} }),
    GetPluginCapabilities: async () => ({
      capabilities: [
        { service: { type: 'CONTROLLER_SERVICE' } },
        // Volumes live on one node's disk: the scheduler must place pods there.
        { service: { type: 'VOLUME_ACCESSIBILITY_CONSTRAINTS' } },
      ],
    }),
    Probe: async () => ({ ready: { value: await ready() } }),
  }
}
