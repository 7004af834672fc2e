"""What the bridge knows about the contract's quantities and the chips that measure them:
units (with their UCUM codes), ObservedProperty definitions, Home Assistant device classes,
datasheets. One table, read by every target."""

# quantity -> (label, unit symbol, unit name, UCUM code, definition URI, Home Assistant device
# class, Home Assistant unit). Units are CONTRACT.md section 2's; the definitions are stable
# URIs (QUDT quantity kinds, the EEA air-quality pollutant vocabulary).
QUANTITIES = {
    "temperature": ("air temperature", "°C", "degree Celsius", "Cel",
                    "http://qudt.org/vocab/quantitykind/CelsiusTemperature", "temperature", "°C"),
    "humidity": ("relative humidity", "%RH", "percent relative humidity", "%",
                 "http://qudt.org/vocab/quantitykind/RelativeHumidity", "humidity", "%"),
    "pressure": ("air pressure", "hPa", "hectopascal", "hPa",
                 "http://qudt.org/vocab/quantitykind/Pressure", "atmospheric_pressure", "hPa"),
    "pm1_0": ("PM1 mass concentration", "µg/m³", "microgram per cubic metre", "ug/m3",
              "http://dd.eionet.europa.eu/vocabulary/aq/pollutant/6002", "pm1", "µg/m³"),
    "pm2_5": ("PM2.5 mass concentration", "µg/m³", "microgram per cubic metre", "ug/m3",
              "http://dd.eionet.europa.eu/vocabulary/aq/pollutant/6001", "pm25", "µg/m³"),
    "pm10": ("PM10 mass concentration", "µg/m³", "microgram per cubic metre", "ug/m3",
             "http://dd.eionet.europa.eu/vocabulary/aq/pollutant/5", "pm10", "µg/m³"),
    "co2": ("carbon dioxide concentration", "ppm", "parts per million", "[ppm]",
            "http://dd.eionet.europa.eu/vocabulary/aq/pollutant/71", "carbon_dioxide", "ppm"),
    "illuminance": ("illuminance", "lx", "lux", "lx",
                    "http://qudt.org/vocab/quantitykind/Illuminance", "illuminance", "lx"),
}

# driver (the register's chip model) -> (Sensor name, maker, datasheet URL)
CHIPS = {
    "bme280": ("BME280", "Bosch Sensortec",
               "https://www.bosch-sensortec.com/media/boschsensortec/downloads/datasheets/bst-bme280-ds002.pdf"),
    "pms5003": ("PMS5003", "Plantower",
                "https://www.aqmd.gov/docs/default-source/aq-spec/resources-page/plantower-pms5003-manual_v2-3.pdf"),
    "sds011": ("SDS011", "Nova Fitness",
               "https://cdn-reichelt.de/documents/datenblatt/X200/SDS011-DATASHEET.pdf"),
    "sps30": ("SPS30", "Sensirion",
              "https://sensirion.com/media/documents/8600FF88/616542B5/Sensirion_PM_Sensors_Datasheet_SPS30.pdf"),
    "scd4x": ("SCD4x", "Sensirion",
              "https://sensirion.com/media/documents/48C4B7FB/64C134E7/Sensirion_SCD4x_Datasheet.pdf"),
    "sht4x": ("SHT4x", "Sensirion",
              "https://sensirion.com/media/documents/33FD6951/64D3B030/Sensirion_Datasheet_SHT4x.pdf"),
    "bh1750": ("BH1750", "ROHM", "https://www.mouser.com/datasheet/2/348/bh1750fvi-e-186247.pdf"),
}


def quantity(name):
    """The facts of a quantity, or None for one the contract does not name."""
    return QUANTITIES.get(name)


def chip(driver):
    """(Sensor name, maker, datasheet) of a driver; an unknown or absent driver gets a
    generic entry named after it, so a Datastream always has its Sensor."""
    if driver in CHIPS:
        return CHIPS[driver]
    if driver:
        return (driver.upper(), "unknown", "")
    return ("unknown chip", "unknown", "")
