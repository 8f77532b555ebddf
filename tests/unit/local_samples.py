"""Calibration texts for the local analysis (local_cefr's thresholds come from them) and the CEFR scale they are
labelled on; shared by the spelling, CEFR and answer tests, and read by bench/local_analysis.py."""
from __future__ import annotations

from backend.providers import local_cefr

LEVELS = list(local_cefr.LEVELS)


# Calibration texts (local_cefr's thresholds come from these): written for this test as typical of each level,
# spelled correctly, so they also check that correct writing gets no spelling "error" at all.
SAMPLES: dict[str, dict[str, list[str]]] = {
    "en": {
        "A1": [
            "My name is Anna. I am 25 years old. I live in a small house with my family. I have a dog and a cat. "
            "My dog is big and my cat is small. I like music and I like to cook. Every day I go to work by bus. "
            "I work in a shop. I like my job.",
            "Hello! I am Tom. I am from Spain. I have two brothers and one sister. My mother is a teacher and my "
            "father is a doctor. On Sunday we eat together. I like pizza and ice cream. I do not like fish. My "
            "favourite colour is blue. Goodbye!",
            "Today is Monday. I get up at seven o'clock. I eat bread and drink coffee. Then I go to school. My "
            "school is big. I have many friends. We play football after school. In the evening I watch TV and I "
            "go to bed at ten.",
        ],
        "A2": [
            "Last weekend I visited my grandparents in the country. We went for a long walk near the river and we "
            "saw some horses. In the evening my grandmother cooked a big dinner with chicken and potatoes. I was "
            "very tired, so I went to bed early. On Sunday we came back home by train. It was a nice weekend and I "
            "want to go again soon.",
            "I am writing to tell you about my new flat. It has two bedrooms, a small kitchen and a living room "
            "with a big window. The street is quiet, but there is a supermarket near the flat. My neighbours are "
            "friendly. I usually walk to work because it only takes fifteen minutes. Would you like to visit me "
            "next month?",
            "My best friend is called Maria. We met at school when we were ten years old. She is tall and she has "
            "long dark hair. She is very funny and she always helps me when I have a problem. Now she lives in "
            "another city, but we talk on the phone every week. In the summer we often travel together.",
        ],
        "B1": [
            "In my opinion, learning a foreign language is one of the most useful things a person can do. When I "
            "started studying English, I found the grammar quite difficult, but I tried to practise every day. I "
            "watched films with subtitles and listened to podcasts on my way to work. After a year, I noticed that "
            "I could understand much more than before. Now I feel more confident when I travel, and I have made "
            "friends from different countries.",
            "Last year I decided to change my job because I was not happy with my working conditions. It was a "
            "difficult decision, since I had worked for the same company for almost six years. However, I wanted "
            "to find a position where I could use my skills and learn something new. After several interviews, I "
            "was offered a job in a small marketing agency. Although the salary is lower, I enjoy the work much "
            "more and my colleagues are very supportive.",
            "I think that social networks have both advantages and disadvantages. On the one hand, they allow us "
            "to keep in touch with friends who live far away and to share news quickly. On the other hand, many "
            "people spend too much time looking at their phones instead of talking to the people around them. "
            "Personally, I try to limit the time I spend online, especially in the evening, because it helps me "
            "sleep better.",
        ],
        "B2": [
            "Although remote work has become increasingly common, its effects on productivity remain a matter of "
            "debate. Supporters argue that employees save time on commuting and can organise their day more "
            "flexibly, which often results in higher motivation. Critics, on the other hand, point out that "
            "working from home can blur the boundaries between professional and private life, leading to longer "
            "hours and a greater risk of burnout. In my view, the most effective approach is a hybrid model, "
            "provided that companies establish clear expectations and invest in reliable communication tools.",
            "The city council has recently announced plans to restrict car traffic in the historic centre. While "
            "this measure is likely to reduce air pollution and noise, local shop owners are concerned that fewer "
            "customers will be able to reach their businesses. It would therefore be sensible to improve public "
            "transport and create affordable parking on the outskirts before introducing the restrictions. "
            "Otherwise, the policy could damage the local economy and lose the support of residents.",
            "Having spent six months volunteering abroad, I have gained a much deeper understanding of the "
            "challenges faced by rural communities. Initially, I struggled to adapt to the slower pace of life and "
            "the lack of basic facilities, but I gradually learned to appreciate the strong sense of solidarity "
            "among the villagers. This experience has not only improved my language skills but also encouraged me "
            "to consider a career in international development.",
        ],
        "C1": [
            "The proliferation of misinformation on social media poses a considerable threat to democratic "
            "discourse. Algorithms designed to maximise engagement inadvertently amplify sensational content, "
            "thereby reinforcing existing biases and fragmenting public opinion. Although regulatory intervention "
            "is frequently advocated, it raises legitimate concerns about censorship and the concentration of "
            "power in the hands of a few governments or corporations. A more sustainable remedy may lie in "
            "fostering media literacy, so that citizens are equipped to scrutinise sources and evaluate claims "
            "critically.",
            "Contemporary urban planning increasingly acknowledges that sustainable cities cannot be achieved "
            "through technological innovation alone. Equally crucial are policies that address housing "
            "affordability, mitigate gentrification and ensure equitable access to green spaces. Nevertheless, "
            "such ambitions frequently collide with fiscal constraints and entrenched commercial interests, "
            "compelling municipal authorities to negotiate delicate compromises that rarely satisfy every "
            "stakeholder.",
            "Despite considerable advances in renewable energy, the transition away from fossil fuels remains "
            "fraught with economic and political obstacles. Nations heavily dependent on coal exports are "
            "understandably reluctant to endorse ambitious targets, while developing economies contend that they "
            "should not bear a disproportionate share of the burden. Consequently, international negotiations "
            "tend to yield ambiguous commitments whose implementation is difficult to monitor.",
        ],
        "C2": [
            "Notwithstanding its ostensible commitment to meritocracy, the contemporary academy remains permeated "
            "by subtle hierarchies that perpetuate inequities under the guise of impartial evaluation. Peer "
            "review, ostensibly a bulwark against arbitrariness, is susceptible to idiosyncratic predilections and "
            "entrenched orthodoxies, which may stifle heterodox scholarship. Acknowledging these shortcomings need "
            "not entail a wholesale repudiation of the system; rather, it demands a scrupulous reappraisal of the "
            "tacit assumptions underpinning our conception of intellectual merit.",
            "The novelist's prose, at once austere and luminous, eschews the ornate flourishes beloved of her "
            "contemporaries, yet it never lapses into mere asceticism. Her protagonists, beset by an inchoate "
            "yearning they can scarcely articulate, traverse landscapes whose desolation mirrors their own "
            "estrangement. What emerges is a meditation on the ineffable, rendered with such unobtrusive precision "
            "that the reader scarcely perceives the artifice sustaining it.",
            "Epistemological humility, far from constituting an abdication of rigour, is arguably its "
            "precondition: the scientist who presumes the infallibility of prevailing paradigms forfeits the "
            "capacity to discern anomalies that portend their obsolescence. This account of paradigm shifts, "
            "though frequently caricatured, illuminates precisely the dialectic between entrenched consensus and "
            "the disquieting evidence that eventually precipitates its collapse.",
        ],
    },
    "es": {
        "A1": [
            "Me llamo Carlos. Tengo veinte años. Vivo en una casa pequeña con mi familia. Tengo un perro y dos "
            "gatos. Me gusta la música y me gusta comer pizza. Todos los días voy a la escuela en autobús. Mi "
            "escuela es grande y tengo muchos amigos.",
            "Hola, soy Lucía. Soy de México. Mi madre es profesora y mi padre es médico. Tengo una hermana. Los "
            "sábados vamos al parque. Me gusta el helado de chocolate. No me gusta el café. Mi color favorito es "
            "el rojo.",
        ],
        "A2": [
            "El fin de semana pasado fui a la playa con mis amigos. Hacía mucho sol y el agua estaba muy fría. "
            "Comimos pescado en un restaurante cerca del mar y después paseamos por el pueblo. Por la noche "
            "volvimos a casa en tren. Estaba muy cansado, pero fue un día muy bonito.",
        ],
        "B1": [
            "En mi opinión, aprender un idioma extranjero es una de las cosas más útiles que una persona puede "
            "hacer. Cuando empecé a estudiar español, la gramática me parecía bastante difícil, pero intenté "
            "practicar todos los días. Veía películas con subtítulos y escuchaba canciones en el coche. Después de "
            "un año, me di cuenta de que entendía mucho más que antes.",
            "El año pasado decidí cambiar de trabajo porque no estaba contento con mis condiciones laborales. Fue "
            "una decisión difícil, ya que había trabajado en la misma empresa durante casi seis años. Sin embargo, "
            "quería encontrar un puesto donde pudiera aprender algo nuevo. Aunque ahora gano un poco menos, "
            "disfruto mucho más de mi trabajo.",
        ],
        "B2": [
            "Aunque el teletrabajo se ha vuelto cada vez más común, sus efectos sobre la productividad siguen "
            "siendo objeto de debate. Quienes lo defienden sostienen que los empleados ahorran tiempo en "
            "desplazamientos y pueden organizar su jornada con mayor flexibilidad. Sin embargo, los críticos "
            "señalan que trabajar desde casa puede difuminar los límites entre la vida profesional y la privada, "
            "lo que conlleva jornadas más largas.",
        ],
        "C1": [
            "La proliferación de la desinformación en las redes sociales supone una amenaza considerable para el "
            "debate democrático. Los algoritmos diseñados para maximizar la interacción amplifican "
            "involuntariamente los contenidos sensacionalistas, reforzando así los sesgos existentes y "
            "fragmentando la opinión pública. Aunque con frecuencia se reclama una intervención reguladora, esta "
            "suscita preocupaciones legítimas sobre la censura y la concentración del poder.",
            "A pesar de los considerables avances en energías renovables, la transición hacia una economía "
            "descarbonizada sigue plagada de obstáculos económicos y políticos. Los países que dependen de la "
            "exportación de carbón se muestran reacios a suscribir compromisos ambiciosos, mientras que las "
            "economías emergentes sostienen que no deberían soportar una carga desproporcionada.",
        ],
    },
    "fr": {
        "A1": [
            "Je m'appelle Paul. J'ai vingt ans. J'habite dans une petite maison avec ma famille. J'ai un chien et "
            "un chat. J'aime la musique et j'aime manger des pâtes. Tous les jours, je vais à l'école en bus. Mon "
            "école est grande et j'ai beaucoup d'amis.",
            "Bonjour, je suis Marie. Je suis française. Ma mère est professeur et mon père est médecin. Le "
            "dimanche, nous mangeons ensemble. J'aime le chocolat. Je n'aime pas le poisson. Ma couleur préférée "
            "est le bleu.",
        ],
        "B1": [
            "À mon avis, apprendre une langue étrangère est l'une des choses les plus utiles qu'on puisse faire. "
            "Quand j'ai commencé à étudier le français, je trouvais la grammaire assez difficile, mais j'ai essayé "
            "de pratiquer tous les jours. Je regardais des films avec des sous-titres et j'écoutais des chansons "
            "dans la voiture. Après un an, je me suis rendu compte que je comprenais beaucoup mieux.",
        ],
        "C1": [
            "La prolifération de la désinformation sur les réseaux sociaux constitue une menace considérable pour "
            "le débat démocratique. Les algorithmes conçus pour maximiser l'engagement amplifient "
            "involontairement les contenus sensationnalistes, renforçant ainsi les biais existants et fragmentant "
            "l'opinion publique. Bien qu'une intervention réglementaire soit fréquemment préconisée, elle suscite "
            "des inquiétudes légitimes quant à la censure.",
            "Malgré des progrès considérables dans les énergies renouvelables, la transition vers une économie "
            "décarbonée demeure semée d'embûches économiques et politiques. Les pays tributaires des exportations "
            "de charbon se montrent réticents à souscrire des engagements ambitieux, tandis que les économies "
            "émergentes estiment qu'elles ne devraient pas supporter un fardeau disproportionné.",
        ],
    },
    "de": {
        "A1": [
            "Ich heiße Anna. Ich bin zwanzig Jahre alt. Ich wohne in einem kleinen Haus mit meiner Familie. Ich "
            "habe einen Hund und eine Katze. Ich mag Musik und ich koche gern. Jeden Tag fahre ich mit dem Bus zur "
            "Arbeit. Ich arbeite in einem Geschäft.",
            "Hallo, ich bin Tom. Ich komme aus Spanien. Meine Mutter ist Lehrerin und mein Vater ist Arzt. Am "
            "Sonntag essen wir zusammen. Ich esse gern Pizza. Ich trinke keinen Kaffee. Meine Lieblingsfarbe ist "
            "blau.",
        ],
        "B1": [
            "Meiner Meinung nach ist es sehr nützlich, eine Fremdsprache zu lernen. Als ich angefangen habe, "
            "Deutsch zu lernen, fand ich die Grammatik ziemlich schwierig, aber ich habe versucht, jeden Tag zu "
            "üben. Ich habe Filme mit Untertiteln gesehen und im Auto Lieder gehört. Nach einem Jahr habe ich "
            "gemerkt, dass ich viel mehr verstehe als vorher.",
        ],
        "C1": [
            "Die Verbreitung von Falschinformationen in sozialen Netzwerken stellt eine erhebliche Bedrohung für "
            "den demokratischen Diskurs dar. Algorithmen, die auf maximale Interaktion ausgelegt sind, verstärken "
            "unbeabsichtigt reißerische Inhalte, wodurch bestehende Vorurteile gefestigt und die öffentliche "
            "Meinung zersplittert werden. Obwohl häufig eine staatliche Regulierung gefordert wird, weckt diese "
            "berechtigte Bedenken hinsichtlich einer möglichen Zensur.",
            "Trotz beachtlicher Fortschritte bei den erneuerbaren Energien bleibt der Ausstieg aus fossilen "
            "Brennstoffen mit wirtschaftlichen und politischen Hindernissen behaftet. Länder, deren Wohlstand "
            "maßgeblich vom Kohleexport abhängt, zeigen sich verständlicherweise zurückhaltend, während "
            "aufstrebende Volkswirtschaften einwenden, sie dürften keine unverhältnismäßige Last tragen.",
        ],
    },
}
ALL_SAMPLES = [(lang, level, text) for lang, levels in SAMPLES.items()
               for level, texts in levels.items() for text in texts]

# Short correct texts in the other supported languages: detected, and nothing reported.
OTHER_LANGUAGES = {
    "it": "Mi chiamo Anna. Vivo in una piccola casa con la mia famiglia. Mi piace la musica e cucinare. Ogni "
          "giorno vado al lavoro in autobus.",
    "pt": "Chamo-me Ana. Moro numa casa pequena com a minha família. Gosto de música e de cozinhar. Todos os dias "
          "vou para o trabalho de autocarro.",
    "nl": "Ik heet Anna. Ik woon in een klein huis met mijn familie. Ik hou van muziek en koken. Elke dag ga ik "
          "met de bus naar mijn werk.",
    "ru": "Меня зовут Анна. Я живу в маленьком доме с семьёй. Я люблю музыку и готовить. Каждый день я езжу на "
          "работу на автобусе.",
    "ar": "اسمي آنا. أعيش في بيت صغير مع عائلتي. أحب الموسيقى والطبخ. كل يوم أذهب إلى العمل بالحافلة.",
    "fa": "اسم من آنا است. من با خانواده‌ام در یک خانه کوچک زندگی می‌کنم. موسیقی و آشپزی را دوست دارم. هر روز "
          "با اتوبوس به سر کار می‌روم.",
    "lv": "Mani sauc Anna. Es dzīvoju mazā mājā kopā ar savu ģimeni. Man patīk mūzika un ēst gatavošana. Katru "
          "dienu es braucu uz darbu ar autobusu.",
}
