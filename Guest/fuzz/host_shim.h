#ifndef KV_HOST_SHIM_H
#define KV_HOST_SHIM_H
extern unsigned kv_host_fail_rate;
void kv_host_seed(unsigned long long seed);
#endif
