# `streetnode demo` (docs/drivers.md): the real BME280 driver, on whatever
# interpreter runs this (MicroPython in `streetnode demo`), reads a simulated chip in a
# simulated Siegen street over a day.
#   micropython tools/streetnode/sim/demo_bme280.py [hours] [minutes between readings]

import sys

from drivers.bme280 import BME280
from hal import clock
from hal.sim.bme280 import SimBME280
from hal.sim.bus import SimI2C
from hal.sim.environment import StreetEnvironment


def main(hours=24.0, every_min=60):
    clk = clock.install(clock.VirtualClock())
    i2c = SimI2C()
    i2c.attach(SimBME280(StreetEnvironment(seed=1, start_hour=0.0)), 0x76)
    sensor = BME280(i2c, 0x76, oversampling_pressure=4, oversampling_humidity=2, iir_filter=4)
    print("BME280 chip id 0x%02x at 0x76: %d bus transactions to set up" % (sensor.chip_id, i2c.transactions))
    print("%-6s %10s %10s %12s %4s" % ("time", "temp °C", "hum %RH", "press hPa", "tx"))
    steps = int(hours * 60 // every_min)
    for step in range(steps + 1):
        before = i2c.transactions
        v = sensor.read()
        minute = step * every_min
        print(
            "%02d:%02d  %10.2f %10.2f %12.2f %4d"
            % (minute // 60 % 24, minute % 60, v["temperature"], v["humidity"], v["pressure"], i2c.transactions - before)
        )
        clk.sleep_ms(every_min * 60000 - clk.now_ms % 60000)
    print("interpreter: %s %s" % (sys.implementation.name, ".".join(str(x) for x in sys.implementation.version[:3])))


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 24.0, int(sys.argv[2]) if len(sys.argv) > 2 else 60)
