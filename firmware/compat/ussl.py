# `ussl` for umqtt 1.3.4, which imports it when ssl=True. MicroPython 1.29 has only `ssl`,
# whose wrap_socket(sock, cert_reqs=, cadata=, server_hostname=) takes umqtt's ssl_params.
# (usocket, ustruct, ubinascii still resolve on 1.29: only this one needs a bridge.)
from ssl import *  # noqa: F401,F403
